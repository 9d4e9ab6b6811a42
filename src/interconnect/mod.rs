//! Interconnect: how the devices of a run reach the host, each other and the other processes.
//!
//! | piece | module | job |
//! |---|---|---|
//! | the processes of a run | [`world`] | rank, world size, this process's devices, from Slurm or gpuvet's variables |
//! | handing out the id | [`rendezvous`] | rank 0 gives every rank the communicator id (TCP or a shared file); NCCL does the rest |
//! | the links | [`topology`] | PCIe rates from generation and width, NVLink per pair, the topology matrix |
//! | link figures | [`links`] | measured transfers, pairs and collectives against their links; pairs below expectation named |
//!
//! The workloads themselves (transfers, peer copies, collectives) are kinds in
//! [`crate::workload`]; what their figures mean is docs/interconnect.md.

pub mod links;
pub mod rendezvous;
pub mod topology;
pub mod world;

pub use world::{Launcher, Rendezvous, World, WorldChoice, WorldRecord};
