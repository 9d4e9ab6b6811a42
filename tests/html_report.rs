//! The HTML report: self-contained (nothing to fetch), and it renders in a real browser.
//!
//! The browser checks open the page in headless Chromium (Debian's `chromium`), take a
//! screenshot and require it to be non-blank, and read Chromium's log for console messages and
//! for any file or network request besides the page itself. A broken page is run through the
//! same checks first, to prove they catch what they are meant to. Without Chromium these tests
//! say so and pass, unless GPUVET_REQUIRE_CHROMIUM=1 (CI), where they fail.

mod common;

use common::{mock_report, temp_files, MATMUL_SWEEP};
use gpuvet::commands::report::ReportArgs;
use gpuvet::html::{render_html, render_html_with, HtmlExtras};
use gpuvet::plot::Timeline;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `gpuvet report` as the library runs it, not quiet.
fn run_report(args: &ReportArgs) -> anyhow::Result<i32> {
    gpuvet::commands::report::run(args, false)
}

fn timelines() -> Vec<Timeline> {
    (0..2)
        .map(|g| {
            let t: Vec<f64> = (0..30).map(|i| i as f64).collect();
            let mut series = BTreeMap::new();
            series.insert(
                "throughput (TFLOP/s)".to_string(),
                t.iter().map(|s| 700.0 - g as f64 * s).collect(),
            );
            series.insert(
                "power (W)".to_string(),
                t.iter().map(|s| 650.0 + s).collect(),
            );
            Timeline {
                gpu: format!("{g} Mock GPU"),
                t_s: t,
                series,
            }
        })
        .collect()
}

/// Every way a page could pull something in from outside.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script", " src=", "@import", "url(", "<iframe", "<object", "<embed",
    ] {
        assert!(!lower.contains(bad), "the page contains `{bad}`");
    }
    // the only href is the empty favicon that stops the browser asking for /favicon.ico
    let hrefs: Vec<&str> = lower
        .match_indices("href=")
        .map(|(i, _)| &lower[i..i + 14])
        .collect();
    assert_eq!(hrefs, vec!["href=\"data:,\">"], "{hrefs:?}");
}

#[test]
fn page_is_self_contained_with_inventory_results_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(dir.path(), "results", "");
    let tl = timelines();
    let html = render_html_with(
        &r,
        &HtmlExtras {
            timelines: &tl,
            ..HtmlExtras::default()
        },
    );
    assert_self_contained(&html);
    for s in [
        "<h2>Inventory</h2>",
        "<h2>Results</h2>",
        "<h2>Charts</h2>",
        "Mock GPU",
        "matmul.bf16.64x64x64.nk",
        "Timeline",
    ] {
        assert!(html.contains(s), "no {s}");
    }
    // one roofline and one timeline, inline
    assert_eq!(html.matches("<svg").count(), 2);
    // markup in names cannot break out
    let mut evil = r.clone();
    evil.devices[0].name = "<b>GPU & co</b>".into();
    let h = render_html(&evil);
    assert!(h.contains("&lt;b&gt;GPU &amp; co&lt;/b&gt;"));
    assert!(!h.contains("<b>GPU"));
    // A figure above its peak says why under its row, as the terminal does.
    let mut fast = r.clone();
    fast.results[0].peak_fraction = Some(1.3);
    let why = fast.results[0].above_peak().unwrap();
    assert!(render_html(&fast).contains(&why), "{why}");
    assert!(!html.contains("of the peak"));
    // What the suite could not run is said above the table, escaped.
    assert!(!html.contains("Not run:"));
    let mut lacking = r.clone();
    lacking.not_run = vec![gpuvet::plan::NotRun {
        workload: "matmul.bf16.8192x8192x8192.nk".into(),
        device: 0.into(),
        why: "cuBLASLt not found: `pip install nvidia-cublas` <13.x>".into(),
    }];
    assert!(render_html(&lacking).contains(
        "Not run: Mock GPU cannot run matmul.bf16.8192x8192x8192.nk: cuBLASLt not found: `pip install nvidia-cublas` &lt;13.x&gt;"
    ));
}

#[test]
fn run_report_writes_the_page_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let (r, results) = mock_report(dir.path(), "results", "");
    let verdict = gpuvet::validate::judge(&r, &gpuvet::cli::ValidateArgs::default());
    let vpath = dir.path().join("verdict.json");
    std::fs::write(&vpath, verdict.to_json()).unwrap();
    let out = dir.path().join("report.html");
    let args = ReportArgs {
        results: results.clone(),
        output: out.clone(),
        verdict: Some(vpath),
        title: Some("Node 7".into()),
        axis: None,
    };
    assert_eq!(run_report(&args).unwrap(), 0);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<title>Node 7</title>"));
    assert!(html.contains("Verdict:"));
    assert!(html.contains(&format!("badge {}", verdict.verdict.name())));

    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"results\": [").unwrap();
    for bad in [corrupt.clone(), dir.path().join("missing.json")] {
        let e = run_report(&ReportArgs {
            results: bad,
            ..args.clone()
        })
        .unwrap_err();
        assert!(e.to_string().contains("corrupt or unreadable"), "{e}");
    }
    // a results file given as the verdict is refused with a clear reason
    let e = run_report(&ReportArgs {
        verdict: Some(results.clone()),
        ..args.clone()
    })
    .unwrap_err();
    assert!(e.to_string().contains("not a verdict"), "{e}");
    // a directory as output
    assert!(run_report(&ReportArgs {
        output: dir.path().to_path_buf(),
        verdict: None,
        ..args.clone()
    })
    .is_err());
}

// ---- the browser ----

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GPUVET_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The browser, or `None` after saying why the browser checks are skipped.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    match chromium() {
        Some(p) => Some(p),
        None if std::env::var("GPUVET_REQUIRE_CHROMIUM").as_deref() == Ok("1") => {
            panic!(
                "GPUVET_REQUIRE_CHROMIUM=1 but no chromium in PATH (apt-get install -y chromium fonts-liberation)"
            )
        }
        None => {
            common::say_skip(
                test,
                "no chromium in PATH (apt-get install -y chromium fonts-liberation; set GPUVET_REQUIRE_CHROMIUM=1 to make this a failure)",
            );
            None
        }
    }
}

/// What Chromium saw while rendering a page.
struct Rendered {
    png: PathBuf,
    /// Console messages (errors, warnings, logs: the page has no script, so any is a problem).
    console: Vec<String>,
    /// Files and URLs requested besides the page itself.
    fetches: Vec<String>,
}

fn render(browser: &Path, page: &Path, work: &Path) -> Rendered {
    let png = work.join("shot.png");
    let profile = work.join("profile");
    let url = format!("file://{}", page.display());
    let mut child = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=1",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.join("chromium.log")).unwrap())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(work.join("chromium.log")).unwrap_or_default();
    let page_text = std::fs::read_to_string(page).unwrap_or_default();
    let mut console = Vec::new();
    let mut fetches = Vec::new();
    for line in log.lines() {
        if line.contains(":CONSOLE") {
            console.push(line.to_string());
        }
        if let Some(i) = line.find("FileURLLoader::Start: ") {
            let u = line[i + "FileURLLoader::Start: ".len()..].trim();
            if u != url {
                fetches.push(u.to_string());
            }
        }
        // Network requests the page caused: ones for a URL written in the page (the browser's
        // own background requests are not the page's doing).
        if let Some(i) = line.find("NotifyBeforeURLRequest: ") {
            let u = line[i + "NotifyBeforeURLRequest: ".len()..].trim();
            if page_text.contains(u) {
                fetches.push(u.to_string());
            }
        }
    }
    Rendered {
        png,
        console,
        fetches,
    }
}

/// (width, height, standard deviation of luminance, share of pixels darker than the page).
fn picture_stats(png: &Path) -> (u32, u32, f64, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    assert!(ch >= 3, "unexpected PNG colour type {:?}", info.color_type);
    let bytes = &buf[..info.buffer_size()];
    let lum: Vec<f64> = bytes
        .chunks_exact(ch)
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .collect();
    let n = lum.len() as f64;
    let mean = lum.iter().sum::<f64>() / n;
    let sd = (lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt();
    let dark = lum.iter().filter(|l| **l < 160.0).count() as f64 / n;
    (info.width, info.height, sd, dark)
}

#[test]
fn browser_checks_catch_a_broken_page() {
    let Some(browser) = browser_or_skip("browser_checks_catch_a_broken_page") else {
        return;
    };
    let (dir, [page]) = temp_files(["broken.html"]);
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body>\
<img src=\"missing.png\"><script>console.error('broken on purpose')</script></body></html>",
    )
    .unwrap();
    let r = render(&browser, &page, dir.path());
    assert!(
        r.console.iter().any(|l| l.contains("broken on purpose")),
        "console not seen: {:?}",
        r.console
    );
    assert!(
        r.fetches.iter().any(|u| u.ends_with("missing.png")),
        "fetch not seen: {:?}",
        r.fetches
    );
    // an empty page gives a blank screenshot
    let blank = dir.path().join("blank.html");
    std::fs::write(
        &blank,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body></body></html>",
    )
    .unwrap();
    let b = render(&browser, &blank, dir.path());
    let (_, _, sd, dark) = picture_stats(&b.png);
    assert!(sd < 1.0 && dark == 0.0, "blank page: sd {sd}, dark {dark}");
}

#[test]
fn report_renders_in_chromium() {
    let Some(browser) = browser_or_skip("report_renders_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = mock_report(dir.path(), "results", MATMUL_SWEEP);
    let tl = timelines();
    let html = render_html_with(
        &r,
        &HtmlExtras {
            timelines: &tl,
            swept_axis: Some("m"),
            ..HtmlExtras::default()
        },
    );
    assert_eq!(html.matches("<svg").count(), 3, "roofline, sweep, timeline");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let out = render(&browser, &page, dir.path());
    assert!(
        out.console.is_empty(),
        "console messages: {:?}",
        out.console
    );
    assert!(
        out.fetches.is_empty(),
        "the page fetched: {:?}",
        out.fetches
    );
    let (w, h, sd, dark) = picture_stats(&out.png);
    assert_eq!((w, h), (1200, 1600));
    // text, tables and charts: far from one flat colour
    assert!(sd > 20.0, "screenshot looks blank: luminance sd {sd:.1}");
    assert!(
        dark > 0.01,
        "screenshot has almost no ink: {:.3}% dark",
        dark * 100.0
    );
}
