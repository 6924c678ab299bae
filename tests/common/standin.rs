//! The EHR stand-in (`../shared/ehr-standin/run server`) as a process per test: its own port, its
//! faults from the environment, killed when dropped. Skipped with a
//! printed reason where Node.js is missing, unless `CI=true`.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct StandIn {
    child: Child,
    pub base: String,
    pub port: u16,
    pub request_log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    /// The SMART Backend Services client tests read with when the stand-in requires it.
    pub reader: Option<SmartReader>,
}

/// A client of the stand-in's SMART Backend Services: its id and its ES384 key (PKCS#8 PEM).
pub struct SmartReader {
    pub client_id: String,
    pub key_pem: String,
    pub kid: String,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // `run` execs node, so the child is node itself. (Not `kill -KILL -PGID`: procps-ng
        // 4.0.2's kill turns some negative ids into -1, every process.)
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `../shared/ehr-standin/run`, or None (with a printed reason) where it cannot run outside CI.
pub fn runner() -> Option<PathBuf> {
    let run = super::shared_dir().join("ehr-standin/run");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (run.exists() && node, super::in_ci()) {
        (true, _) => Some(run),
        (false, false) => {
            super::say(
                "skipping sync test: ../shared/ehr-standin/run or Node.js is missing; set CI=true to make this an error",
            );
            None
        }
        (false, true) => panic!("CI=true but ../shared/ehr-standin/run or Node.js is missing"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl StandIn {
    /// Starts a stand-in with these faults (`EHR_*` variables); None when skipped.
    pub async fn start(env: &[(&str, &str)]) -> Option<StandIn> {
        Self::start_at(free_port(), env).await
    }

    /// Starts one on a given port (a target restarted at the address the gateway knows).
    pub async fn start_at(port: u16, env: &[(&str, &str)]) -> Option<StandIn> {
        let run = runner()?;
        let dir = tempfile::tempdir().unwrap();
        let request_log = dir.path().join("requests.ndjson");
        let mut command = Command::new(&run);
        command
            .arg("server")
            .env("PORT", port.to_string())
            .env("EHR_REQUEST_LOG", &request_log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start the stand-in");
        let base = format!("http://127.0.0.1:{port}/fhir/R4");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/metadata")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the stand-in did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(StandIn {
            child,
            base,
            port,
            request_log,
            _dir: dir,
            http,
            reader: None,
        })
    }

    /// A fresh access token for the test's reader (tokens may live only seconds), or None.
    async fn token(&self) -> Option<String> {
        let reader = self.reader.as_ref()?;
        let token_url = format!("{}/auth/token", self.base);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({
            "iss": reader.client_id, "sub": reader.client_id, "aud": token_url,
            "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
        header.kid = Some(reader.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(reader.key_pem.as_bytes()).unwrap();
        let assertion = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let form = serde_urlencoded::to_string([
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .unwrap();
        for _ in 0..50 {
            let response = self
                .http
                .post(&token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
                .await;
            if let Ok(response) = response
                && response.status().is_success()
            {
                let body: Value = response.json().await.unwrap();
                return Some(body["access_token"].as_str().unwrap().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("the stand-in gave the test reader no token");
    }

    async fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match self.token().await {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Every resource of a type at the stand-in (all pages; retried through injected faults).
    pub async fn all(&self, resource_type: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = format!("{}/{resource_type}?_count=1000", self.base);
        loop {
            let bundle = self.get_json(&url).await;
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                out.push(entry["resource"].clone());
            }
            match bundle["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
            {
                Some(next) => url = next["url"].as_str().unwrap().to_owned(),
                None => break,
            }
        }
        out
    }

    pub async fn get_json(&self, url: &str) -> Value {
        for _ in 0..50 {
            if let Ok(response) = self.get(url).await.send().await {
                if response.status().is_success() {
                    return response.json().await.unwrap();
                }
                assert!(
                    matches!(response.status().as_u16(), 429 | 503),
                    "GET {url}: {}",
                    response.status()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("the stand-in kept failing GET {url}");
    }

    /// POSTs a resource (retried through injected faults; a dropped answer is looked up).
    pub async fn create(&self, resource: &Value) -> Value {
        let resource_type = resource["resourceType"].as_str().unwrap();
        for _ in 0..50 {
            let mut request = self
                .http
                .post(format!("{}/{resource_type}", self.base))
                .header("content-type", "application/fhir+json")
                .json(resource);
            if let Some(token) = self.token().await {
                request = request.bearer_auth(token);
            }
            if let Ok(response) = request.send().await {
                if response.status().as_u16() == 201 {
                    return response.json().await.unwrap();
                }
                assert!(
                    matches!(response.status().as_u16(), 429 | 503),
                    "POST {resource_type}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("the stand-in kept failing POST {resource_type}");
    }

    /// PUTs a new version of a resource it holds (retried through injected faults).
    pub async fn update(&self, resource: &Value) -> Value {
        let resource_type = resource["resourceType"].as_str().unwrap();
        let id = resource["id"].as_str().unwrap();
        for _ in 0..50 {
            let mut request = self
                .http
                .put(format!("{}/{resource_type}/{id}", self.base))
                .header("content-type", "application/fhir+json")
                .json(resource);
            if let Some(token) = self.token().await {
                request = request.bearer_auth(token);
            }
            if let Ok(response) = request.send().await {
                if response.status().is_success() {
                    return response.json().await.unwrap();
                }
                let status = response.status().as_u16();
                assert!(
                    matches!(status, 429 | 503),
                    "PUT {resource_type}: {status} {}",
                    response.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("the stand-in kept failing PUT {resource_type}");
    }

    /// The request log: (ms, method, path, status) per request.
    pub fn requests(&self) -> Vec<(f64, String, String, u16)> {
        let text = std::fs::read_to_string(&self.request_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|v| {
                (
                    v["t"].as_f64().unwrap_or_default(),
                    v["method"].as_str().unwrap_or_default().to_owned(),
                    v["path"].as_str().unwrap_or_default().to_owned(),
                    v["status"].as_u64().unwrap_or_default() as u16,
                )
            })
            .collect()
    }
}

/// The clinic identifier values of resources (the record ids under `system_prefix`), with how many
/// resources carry each.
pub fn identifier_counts(resources: &[Value], system_prefix: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for resource in resources {
        for identifier in resource["identifier"].as_array().into_iter().flatten() {
            // The record's own id (not a client's MRN, also under the prefix).
            if identifier["system"]
                .as_str()
                .is_some_and(|s| s.starts_with(system_prefix) && !s.ends_with("/mrn"))
            {
                *counts
                    .entry(identifier["value"].as_str().unwrap_or_default().to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}
