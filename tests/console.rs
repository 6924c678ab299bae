//! The operations console end to end: the `iop-gateway serve` process with its console on its
//! own port, the EHR stand-in as the sync target, and a real headless Chromium driven over
//! WebDriver (Python selenium, `tests/console/browser.py`): sign in, push to the target and
//! watch it run and end, find the dead letter and retry it once its cause is fixed, accept a
//! referral, search the audit log; a wrong password refused, a viewer without the buttons that
//! act. Over plain HTTP: a form without its CSRF token refused, a viewer's forged POST refused,
//! and `/metrics` agreeing with what the runs did. The screenshots in `docs/console/` are this
//! test's. Skipped with a printed reason where Chromium, its driver, selenium or Node.js is
//! missing, unless `CI=true`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::process::{Server, gateway, run, start};
use common::standin::StandIn;
use iop_gateway::domain::{Client, Goal, ReferralStatus};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("IOP_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop-venv/bin/python"))
}

/// Why the browser cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(program).exists() {
            return Some(format!(
                "{program} is missing (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let selenium = Command::new(python())
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!selenium).then(|| {
        format!(
            "selenium is not installed for {} (see .ci/run)",
            python().display()
        )
    })
}

fn cli(db_url: &str, dir: &Path) -> Command {
    let mut command = gateway(dir);
    command.env("IOP_DATABASE_URL", db_url);
    command
}

fn add_operator(db_url: &str, dir: &Path, name: &str, role: &str, password: &str) {
    let mut child = cli(db_url, dir)
        .args(["operators", "add", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "operators add {name}: {out:?}");
}

/// Runs one phase of the browser script; panics with its output if it fails.
fn browser(phase: &str, env: &[(&str, String)]) {
    let out = Command::new(python())
        .arg(repo().join("tests/console/browser.py"))
        .arg(phase)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SCREENSHOTS", repo().join("docs/console"))
        .output()
        .expect("run tests/console/browser.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "browser phase {phase} failed:\n{text}"
    );
    common::say(text.trim());
}

/// A signed-in HTTP session (no browser): its cookie and its CSRF token.
struct Session {
    http: reqwest::Client,
    console: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn sign_in(console: &str, name: &str, password: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http.get(format!("{console}/sign-in")).send().await.unwrap();
        let sign_in_cookie = cookie_of(&form, "iop_console_sign_in");
        let page = form.text().await.unwrap();
        let token = hidden_csrf(&page);
        let signed = http
            .post(format!("{console}/sign-in"))
            .header("cookie", format!("iop_console_sign_in={sign_in_cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("csrf", token.as_str()),
                ("name", name),
                ("password", password),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303, "{name} signs in");
        let cookie = cookie_of(&signed, "iop_console");
        let overview = http
            .get(format!("{console}/"))
            .header("cookie", format!("iop_console={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Self {
            csrf: hidden_csrf(&overview),
            http,
            console: console.to_owned(),
            cookie,
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.console))
            .header("cookie", format!("iop_console={}", self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .unwrap()
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("a {name} cookie"))
        .to_owned()
}

fn hidden_csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// The value of a Prometheus sample `name{labels}`; a missing series fails the test.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no {series}:\n{metrics}"))
}

#[tokio::test]
async fn operators_run_the_clinic_from_the_console_in_a_real_browser() {
    if let Some(why) = browser_missing() {
        assert!(!common::in_ci(), "CI=true but {why}");
        common::say(&format!("skipping console browser test: {why}"));
        return;
    }
    // Slow answers, so that a person (and this test) sees the push while it runs.
    let Some(standin) = StandIn::start(&[("EHR_LATENCY_MS", "250")]).await else {
        return;
    };
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    // A seeded clinic, with a Patient read over the API (the accounting of disclosures has a row).
    let app = common::app::spawn_app(&db.store).await;
    let client = db
        .store
        .page::<Client>(None, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let (status, _) = app.get(&format!("Patient/{}", client.id)).await;
    assert_eq!(status, 200);
    let referral = common::app::inbound_referral(&db.store, ReferralStatus::Received).await;
    let (ok, out, err) =
        run(cli(&db.url, dir.path()).args(["targets", "add", "ehr", "--base-url", &standin.base]));
    assert!(ok, "{out}{err}");
    let passwords = [
        ("alice", "operator", "alice-operates-the-syncs"),
        ("pat", "privacy-officer", "pat-reads-the-audit-trail"),
        ("vic", "viewer", "vic-only-looks-around"),
    ];
    for (name, role, password) in passwords {
        add_operator(&db.url, dir.path(), name, role, password);
    }
    // Someone edits the clinic database by hand, around the gateway's rules.
    let goal = db
        .store
        .page::<Goal>(None, 1)
        .await
        .unwrap()
        .remove(0)
        .record
        .id
        .to_string();
    let set_goal = |text: &str| {
        format!(
            "UPDATE plan_goals SET description = '{text}', version = version + 1 WHERE id = '{goal}'"
        )
    };
    db.store.execute_raw(&set_goal("   ")).await.unwrap();

    let (server, lines): (Server, Vec<String>) = start({
        let mut command = cli(&db.url, dir.path());
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        command
    });
    let console = lines
        .iter()
        .find_map(|l| l.strip_prefix("console on "))
        .expect("serve prints the console's address")
        .to_owned();
    let env = vec![
        ("CONSOLE", console.clone()),
        ("PASSWORD_ALICE", passwords[0].2.to_owned()),
        ("PASSWORD_PAT", passwords[1].2.to_owned()),
        ("PASSWORD_VIC", passwords[2].2.to_owned()),
        ("GOAL", goal.clone()),
        ("REFERRAL", referral.clone()),
        ("PATIENT", client.id.to_string()),
    ];

    browser("push", &env);
    browser("sign-in", &env);

    // Over plain HTTP: no CSRF token, no action; a viewer's forged form, no action.
    let alice = Session::sign_in(&console, "alice", passwords[0].2).await;
    let before = db.store.sync_runs("ehr", 100).await.unwrap().len();
    let forged = alice
        .post("/targets/ehr/run", &[("direction", "push")])
        .await;
    assert_eq!(forged.status(), 403, "a form without its CSRF token");
    let wrong = alice
        .post(
            "/targets/ehr/run",
            &[("direction", "push"), ("csrf", "guessed")],
        )
        .await;
    assert_eq!(wrong.status(), 403, "a form with another token");
    let vic = Session::sign_in(&console, "vic", passwords[2].2).await;
    let csrf = vic.csrf.clone();
    let retry = vic
        .post(
            "/dead-letters/retry",
            &[("target", "ehr"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(retry.status(), 403, "a viewer cannot retry");
    assert!(
        retry
            .text()
            .await
            .unwrap()
            .contains("needs the operator role"),
        "refused for the role, not the token"
    );
    let decide = vic
        .post(
            &format!("/referrals/{referral}/decide"),
            &[("decision", "accept"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(decide.status(), 403, "a viewer cannot accept");
    assert!(
        decide
            .text()
            .await
            .unwrap()
            .contains("needs the operator role")
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        db.store.sync_runs("ehr", 100).await.unwrap().len(),
        before,
        "none of them started a run"
    );

    // The cause is fixed at the clinic; the operator retries the letter from the console.
    db.store
        .execute_raw(&set_goal("Walk every morning"))
        .await
        .unwrap();
    browser("retry", &env);
    let at_target = standin.all("Goal").await;
    assert!(
        at_target
            .iter()
            .any(|g| g.to_string().contains("Walk every morning")),
        "the fixed goal reached the target"
    );
    browser("audit", &env);

    // /metrics agrees with what the runs recorded.
    let runs = db.store.sync_runs("ehr", 100).await.unwrap();
    let summaries: Vec<Value> = runs
        .iter()
        .filter_map(|r| serde_json::from_str(r.summary.as_deref()?).ok())
        .collect();
    let total = |key: &str| -> f64 {
        summaries
            .iter()
            .map(|s| s[key].as_u64().unwrap_or(0) as f64)
            .sum()
    };
    let sent = total("created") + total("updated") + total("deleted");
    let metrics = reqwest::get(format!("{console}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |result: &str| {
        format!("iop_sync_resources_total{{target=\"ehr\",direction=\"push\",result=\"{result}\"}}")
    };
    assert!(runs.len() >= 2, "the push and the retries: {runs:?}");
    assert_eq!(sample(&metrics, &series("sent")), sent, "{metrics}");
    assert_eq!(
        sample(&metrics, &series("rejected")),
        total("rejected"),
        "{metrics}"
    );
    assert!(total("rejected") >= 1.0);
    assert_eq!(
        sample(&metrics, "iop_sync_dead_letters{target=\"ehr\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "iop_sync_runs_total{target=\"ehr\",direction=\"push\",outcome=\"ok\"}"
        ),
        runs.len() as f64
    );
    assert!(
        sample(
            &metrics,
            "iop_http_requests_total{route=\"/sign-in\",method=\"POST\",status=\"401\"}"
        ) >= 1.0,
        "the wrong password counted: {metrics}"
    );
    assert!(
        !metrics.contains(&goal) && !metrics.contains(&client.id.to_string()),
        "no ids in labels"
    );
    drop(server);
    db.cleanup().await;
}

/// Two `serve` processes (replicas) on one database: a session begun on one is good on the
/// other, a form's token too; disabling the operator ends it on both at once.
async fn sessions_are_shared_by_replicas(db: common::TestDb) {
    let dir = tempfile::tempdir().unwrap();
    add_operator(
        &db.url,
        dir.path(),
        "alice",
        "operator",
        "alice-operates-the-syncs",
    );
    let replica = || {
        let mut command = cli(&db.url, dir.path());
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let (server, lines) = start(command);
        let console = lines
            .iter()
            .find_map(|l| l.strip_prefix("console on "))
            .expect("the console's address")
            .to_owned();
        (server, console)
    };
    let (_a, console_a) = replica();
    let (_b, console_b) = replica();
    let alice = Session::sign_in(&console_a, "alice", "alice-operates-the-syncs").await;
    let on_b = |path: &str| {
        alice
            .http
            .get(format!("{console_b}{path}"))
            .header("cookie", format!("iop_console={}", alice.cookie))
            .send()
    };
    let page = on_b("/dead-letters").await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the session is good on the other replica"
    );
    // A form with the session's token is taken by the other replica too (a missing client
    // answers 404 after the CSRF check passed).
    let form = alice
        .http
        .post(format!("{console_b}/clients/enable"))
        .header("cookie", format!("iop_console={}", alice.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("csrf", alice.csrf.as_str()),
            ("client", "nobody"),
            ("enabled", "false"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 404);

    // Keys rotated from the console: a private key is refused, a JWKS URL is taken.
    let jwks = repo().join("fixtures/auth/client.jwks.json");
    let (ok, out, err) = run(cli(&db.url, dir.path()).args([
        "clients",
        "add",
        "partner",
        "--jwks",
        jwks.to_str().unwrap(),
        "--scope",
        "system/CarePlan.rs",
    ]));
    assert!(ok, "{out}{err}");
    let private =
        std::fs::read_to_string(repo().join("fixtures/auth/client.private.jwks.json")).unwrap();
    let rotate = |fields: Vec<(&'static str, String)>| {
        let mut body = vec![
            ("csrf", alice.csrf.clone()),
            ("client", "partner".to_owned()),
        ];
        body.extend(fields);
        alice
            .http
            .post(format!("{console_a}/clients/keys"))
            .header("cookie", format!("iop_console={}", alice.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&body).unwrap())
            .send()
    };
    assert_eq!(rotate(vec![("jwks", private)]).await.unwrap().status(), 400);
    let url = "https://partner.example/.well-known/jwks.json";
    assert_eq!(
        rotate(vec![("jwks_url", url.to_owned())])
            .await
            .unwrap()
            .status(),
        303
    );
    let partner = db.store.api_client("partner").await.unwrap().unwrap();
    assert_eq!(
        partner.keys,
        iop_gateway::domain::KeySource::Url(url.to_owned())
    );

    let (ok, out, err) = run(cli(&db.url, dir.path()).args(["operators", "disable", "alice"]));
    assert!(ok, "{out}{err}");
    for console in [&console_a, &console_b] {
        let page = alice
            .http
            .get(format!("{console}/"))
            .header("cookie", format!("iop_console={}", alice.cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 303, "signed out everywhere");
        assert_eq!(page.headers()["location"], "/sign-in");
    }
    let (ok, out, _) = run(cli(&db.url, dir.path()).args(["operators", "list"]));
    assert!(ok && out.contains("alice\toperator\tdisabled"), "{out}");
    db.cleanup().await;
}

#[tokio::test]
async fn sessions_are_shared_by_replicas_on_sqlite() {
    sessions_are_shared_by_replicas(common::sqlite().await).await;
}

#[tokio::test]
async fn sessions_are_shared_by_replicas_on_postgresql() {
    if let Some(db) = common::postgres().await {
        sessions_are_shared_by_replicas(db).await;
    }
}
