//! Determinism mode against the real daemon: the same build (files
//! written, directories listed, hostname, environment, a date from
//! SOURCE_DATE_EPOCH, Python's hash order, a tarball and a zip) run twice
//! with `deterministic = true` gives byte-identical output; the same build
//! without it differs (Python's hash order is random per process). An
//! agent whose policy turns determinism on gets it on every command, with
//! its own SOURCE_DATE_EPOCH, and its Globs in name order.

mod common;

use agentjail::proto::*;
use common::*;

const SHELL: &str = r#"
[agents.shell]
allow_shell = true
uid = 65534
gid = 65534
env = ["AJ_*", "SOURCE_DATE_EPOCH"]
"#;

/// Builds in a fresh directory of the sandbox's /tmp and prints everything
/// a build's output could depend on.
const BUILD: &str = r#"
set -e
rm -rf /tmp/build && mkdir /tmp/build && cd /tmp/build
mkdir -p src/zeta src/alpha
for f in src/zeta/2.txt src/alpha/1.txt src/m.txt; do echo "content of $f" > "$f"; done
echo "hostname: $(hostname)"
echo "umask: $(umask)"
ls -R src
stat -c '%n %a' src/m.txt src/zeta
env | sort
E=${SOURCE_DATE_EPOCH:-$(date +%s)}
echo "built: $(date -u -d "@$E" +%Y-%m-%dT%H:%M:%SZ) ($(date +%Z))"
python3 -c 'print(list({"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"}))'
tar --sort=name --mtime="@$E" --owner=0 --group=0 --numeric-owner -cf out.tar src
sha256sum out.tar
python3 - <<'PY'
import os, time, zipfile
stamp = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))[:6]
with zipfile.ZipFile("out.zip", "w") as z:
    for root, dirs, files in os.walk("src"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            info = zipfile.ZipInfo(path, stamp)
            info.external_attr = (os.stat(path).st_mode & 0xFFFF) << 16
            z.writestr(info, open(path, "rb").read())
PY
sha256sum out.zip
"#;

fn build(deterministic: bool) -> ExecRequest {
    let mut env = std::collections::HashMap::from([("AJ_FLAVOUR".into(), "plain".into())]);
    if deterministic {
        // A request's own variables still pass (where the policy allows
        // them), but cannot change the deterministic ones.
        env.insert("SOURCE_DATE_EPOCH".into(), "1".into());
    }
    ExecRequest {
        shell: BUILD.into(),
        deterministic,
        env,
        ..Default::default()
    }
}

async fn output(c: &mut Client, req: ExecRequest) -> String {
    let r = c
        .run(req)
        .await
        .unwrap_or_else(|s| panic!("{}", describe(&s)))
        .into_inner();
    let stdout = r.stdout.expect("stdout");
    let stderr = r.stderr.expect("stderr");
    let exited = r.exited.expect("exited");
    assert_eq!(
        exited.exit_code,
        Some(0),
        "the build failed: {}",
        String::from_utf8_lossy(&stderr.head)
    );
    assert_eq!(stdout.omitted_bytes, 0);
    String::from_utf8(stdout.head).expect("UTF-8 output")
}

type Client = agentjail::proto::tool_sandbox_client::ToolSandboxClient<tonic::transport::Channel>;

async fn start(extra: &str) -> Daemon {
    let dirs = Dirs::new();
    dirs.give_ws_to_sandbox();
    let policy = standard_policy(&dirs) + SHELL + extra;
    Daemon::start_with(dirs, &policy, "").await
}

#[tokio::test]
async fn the_same_build_twice_in_determinism_mode_is_byte_identical_and_differs_without_it() {
    let d = start("").await;
    let mut c = d.client().await;
    let first = output(&mut c, build(true)).await;
    let second = output(&mut c, build(true)).await;
    assert_eq!(first, second, "determinism mode: byte-identical output");
    for line in [
        "hostname: agentjail",
        "umask: 0022",
        "src/m.txt 644",
        "src/zeta 755",
        "LANG=C.UTF-8",
        "LC_ALL=C.UTF-8",
        "TZ=UTC",
        "PYTHONHASHSEED=0",
        "AJ_FLAVOUR=plain",
        // The documented default, not the request's value.
        "SOURCE_DATE_EPOCH=315532800",
        "built: 1980-01-01T00:00:00Z (UTC)",
    ] {
        assert!(
            first.lines().any(|l| l == line),
            "{line:?} missing from:\n{first}"
        );
    }
    assert!(!first.contains("SOURCE_DATE_EPOCH=1\n"), "{first}");

    // The positive control: without determinism mode the same build
    // differs between runs (Python's hash order is seeded per process;
    // with a dozen strings two runs agree by chance about once in 10^8).
    let plain: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(output(&mut c, build(false)).await);
        }
        v
    };
    assert!(
        plain.iter().any(|p| *p != plain[0]),
        "without determinism mode the runs should differ:\n{}",
        plain[0]
    );
    assert!(
        !plain[0].contains("PYTHONHASHSEED"),
        "no fixed hash seed: {}",
        plain[0]
    );
    // The CLI asks for it with --deterministic.
    let cli = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--shell",
            "echo $PYTHONHASHSEED $SOURCE_DATE_EPOCH; umask",
        ];
        args.splice(1..1, extra.iter().copied());
        let out = d.cli(&args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["--deterministic"]), "0 315532800\n0022\n");
    assert!(!cli(&[]).starts_with("0 315532800"));
    // And Glob keeps its newest-first default.
    assert_eq!(
        glob_of_aged_files(&d, &mut c).await,
        ["c.rs", "a.rs", "b.rs"]
    );
}

#[tokio::test]
async fn an_agents_policy_makes_every_call_deterministic_with_its_epoch() {
    let d = start("\n[agents.determinism]\nenabled = true\nsource_date_epoch = 1700000000\n").await;
    let mut c = d.client().await;
    let out = output(&mut c, build(false)).await;
    assert!(out.contains("SOURCE_DATE_EPOCH=1700000000\n"), "{out}");
    assert!(out.contains("built: 2023-11-14T22:13:20Z (UTC)\n"), "{out}");
    assert_eq!(out, output(&mut c, build(false)).await);
    let who = ok(c.who_am_i(WhoAmIRequest {}).await);
    let caps = who.capabilities.expect("capabilities");
    assert!(caps.deterministic && caps.source_date_epoch == 1_700_000_000);

    // Glob's default order is newest first; for a deterministic agent it is
    // name order, whatever the files' times.
    assert_eq!(
        glob_of_aged_files(&d, &mut c).await,
        ["a.rs", "b.rs", "c.rs"]
    );
}

/// Files written in the order b, a, c; Glob's paths for `*.rs`.
async fn glob_of_aged_files(d: &Daemon, c: &mut Client) -> Vec<String> {
    for (name, age_s) in [("b.rs", 300), ("a.rs", 200), ("c.rs", 100)] {
        let path = d.dirs.w(name);
        put(&path, "x\n");
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    ok(c.glob(glob_req("*.rs")).await).paths
}
