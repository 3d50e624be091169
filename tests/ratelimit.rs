//! Call rates: an agent over its `[agents.rate_limits]` rate is refused
//! with RESOURCE_EXHAUSTED / RATE_LIMITED and a RetryInfo delay, other
//! kinds of tool are not affected, and after the delay it is admitted.

mod common;

use common::*;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_rate_limit_refuses_with_retry_info_and_recovers() {
    let dirs = Dirs::new();
    let policy = format!(
        "{}\n[agents.rate_limits]\nread_per_second = 2\n",
        standard_policy(&dirs)
    );
    let d = Daemon::start_with(dirs, &policy, "").await;
    put(&d.dirs.w("a.txt"), "a\n");
    let mut c = d.client().await;
    // The burst is the rate: two reads pass, the third is refused.
    ok(c.read_file(read_req("a.txt")).await);
    ok(c.stat(stat_req("a.txt")).await);
    let s = assert_reason(c.read_file(read_req("a.txt")).await, "RATE_LIMITED");
    assert_eq!(s.code(), tonic::Code::ResourceExhausted);
    let delay = s
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo delay");
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(1),
        "{delay:?}"
    );
    assert!(
        error_meta(&s)["rule"].contains("rate_limits.read_per_second = 2"),
        "{}",
        describe(&s)
    );
    // Writes are another kind: not limited.
    ok(c.write_file(write_req("b.txt", "b\n")).await);
    // After the delay the agent is admitted again.
    tokio::time::sleep(delay).await;
    ok(c.read_file(read_req("a.txt")).await);
}
