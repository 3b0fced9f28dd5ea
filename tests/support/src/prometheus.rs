//! Reading a process's metrics page as Prometheus would.

/// The metrics page, fetched with curl as an operator (or Prometheus) would.
pub async fn scrape(port: u16) -> String {
    // Off the runtime's thread: the metrics endpoint is served by this runtime.
    let url = format!("http://127.0.0.1:{port}/metrics");
    let curl =
        move || std::process::Command::new("curl").args(["--silent", "--fail", "--max-time", "10", &url]).output();
    let answer = tokio::task::spawn_blocking(curl).await.unwrap().expect("curl runs");
    assert!(answer.status.success(), "curl: {}", String::from_utf8_lossy(&answer.stderr));
    String::from_utf8(answer.stdout).expect("Prometheus text is UTF-8")
}

/// The value of the sample `name` whose labels include every one of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        let matches = series_name == name
            && labels.iter().all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")));
        matches.then(|| value.parse().ok()).flatten()
    })
}
