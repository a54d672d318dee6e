use super::*;

fn failed(status: Option<u16>, retry_after: Option<&str>) -> Attempt {
    Attempt {
        status,
        error: Some("failed".into()),
        excerpt: String::new(),
        duration: Duration::from_millis(1),
        retry_after: retry_after.map(str::to_string),
    }
}

fn fixed(seconds: u64, max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        waits: Waits::Fixed(Duration::from_secs(seconds)),
        max_retries,
        give_up_after: None,
        retry_4xx: false,
    }
}

#[test]
fn verdicts_table() {
    let policy = fixed(600, 3);
    let cases = [
        (failed(Some(500), None), 1, Verdict::RetryAt(1600)),
        (failed(None, None), 3, Verdict::RetryAt(1600)),
        (
            failed(Some(500), None),
            4,
            Verdict::Dead("gave up after 3 retries".into()),
        ),
        (failed(Some(408), None), 1, Verdict::RetryAt(1600)),
        (failed(Some(429), Some("120")), 1, Verdict::RetryAt(1120)),
        (failed(Some(503), Some("30")), 1, Verdict::RetryAt(1030)),
        (failed(Some(500), Some("30")), 1, Verdict::RetryAt(1600)),
        // An HTTP date counts from the failure, on the run's clock.
        (
            failed(Some(503), Some("Thu, 01 Jan 1970 00:17:40 +0000")),
            1,
            Verdict::RetryAt(1060),
        ),
        // And in RFC 9110's two older forms, which a recipient must accept.
        (
            failed(Some(503), Some("Thursday, 01-Jan-70 00:17:40 GMT")),
            1,
            Verdict::RetryAt(1060),
        ),
        (
            failed(Some(503), Some("Thu Jan  1 00:17:40 1970")),
            1,
            Verdict::RetryAt(1060),
        ),
        (
            failed(Some(429), Some("999999")),
            1,
            Verdict::RetryAt(1000 + 86400),
        ),
        (failed(Some(410), None), 1, Verdict::Gone),
        (
            failed(Some(404), None),
            1,
            Verdict::Dead("HTTP 404 is not retried (set retry_4xx = true to retry it)".into()),
        ),
    ];
    for (attempt, attempts, expected) in cases {
        assert_eq!(
            policy.after_failure(&attempt, attempts, 900, 1_000_000),
            expected,
            "{attempt:?} #{attempts}"
        );
    }
    let lenient = RetryPolicy {
        retry_4xx: true,
        ..fixed(10, 3)
    };
    assert_eq!(
        lenient.after_failure(&failed(Some(404), None), 1, 0, 0),
        Verdict::RetryAt(10)
    );
}

#[test]
fn verdicts_decide_status_next_time_and_gone() {
    let policy = fixed(600, 3);
    let delivered = Attempt {
        error: None,
        ..failed(Some(200), None)
    };
    let decide = |attempt: &Attempt, before| policy.verdict(attempt, before, 900, 1_000_500);
    let cases = [
        (
            decide(&delivered, 0),
            Status::Delivered,
            SETTLED,
            None,
            false,
        ),
        (
            decide(&failed(Some(500), None), 0),
            Status::Failed,
            1601,
            None,
            false,
        ),
        (
            decide(&failed(Some(500), None), 3),
            Status::Dead,
            SETTLED,
            Some("gave up after 3 retries"),
            false,
        ),
        (
            decide(&failed(Some(410), None), 0),
            Status::Dead,
            SETTLED,
            Some("410 Gone: the webhook is disabled"),
            true,
        ),
    ];
    for (decision, status, next, reason, gone) in cases {
        let expected = Decision {
            status,
            next_attempt_at: next,
            reason: reason.map(str::to_string),
            gone,
        };
        assert_eq!(decision, expected);
    }
}

#[test]
fn give_up_after_bounds_the_age() {
    let policy = RetryPolicy {
        give_up_after: Some(Duration::from_secs(3600)),
        ..fixed(1800, 10)
    };
    assert_eq!(
        policy.after_failure(&failed(Some(500), None), 1, 0, 1_000_000),
        Verdict::RetryAt(2800)
    );
    assert!(matches!(
        policy.after_failure(&failed(Some(500), None), 2, 0, 2_800_000),
        Verdict::Dead(_)
    ));
}

#[test]
fn the_standard_schedule_has_jitter_within_ten_percent() {
    let policy = RetryPolicy::standard();
    for (retry, base) in STANDARD_SCHEDULE.iter().enumerate() {
        let Verdict::RetryAt(at) =
            policy.after_failure(&failed(Some(500), None), retry as u32 + 1, 0, 0)
        else {
            panic!("retry {retry} must be scheduled");
        };
        let (low, high) = (
            (*base as f64 * 0.9).floor() as i64,
            (*base as f64 * 1.1).ceil() as i64,
        );
        assert!(
            (low.max(1)..=high).contains(&at),
            "retry {retry}: {at} not near {base}"
        );
    }
    assert!(matches!(
        policy.after_failure(&failed(Some(500), None), 10, 0, 0),
        Verdict::Dead(_)
    ));
}

#[test]
fn no_retry_is_due_before_its_wait_less_the_jitter() {
    // Failing late in a second: truncating it (or the wait) would bring the retry forward.
    let now_ms = 1_000_999;
    let cases = [
        (RetryPolicy::standard(), 4_500),
        (fixed(2, 3), 2_000),
        (
            RetryPolicy {
                waits: Waits::Schedule(vec![Duration::from_secs(2)]),
                ..fixed(2, 3)
            },
            1_800,
        ),
    ];
    for (policy, least_ms) in cases {
        for _ in 0..200 {
            let Verdict::RetryAt(at) = policy.after_failure(&failed(Some(500), None), 1, 0, now_ms)
            else {
                panic!("{policy:?} must retry");
            };
            assert!(at * 1000 - now_ms >= least_ms, "{policy:?}: due at {at}");
        }
    }
    let retry_after = failed(Some(429), Some("1"));
    assert_eq!(
        fixed(600, 3).after_failure(&retry_after, 1, 0, now_ms),
        Verdict::RetryAt(1002)
    );
}
