//! `mfa-enroll enroll --users-from FILE --json` through the real binary, as
//! root, on a throwaway host: every line gets one output line in input
//! order, a failed line stops nothing, the summary counts each outcome and
//! the exit status says whether every line was enrolled.
//!
//! The users are Debian's base-passwd system accounts: they exist on every
//! machine, and their records live only in the host's temporary store.

mod common;

use common::{stderr, stdout, write, Host};
use serde_json::Value;

fn status(host: &Host, user: &str) -> Value {
    let out = host.ok(&["status", "--user", user, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn output_lines(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn a_file_of_users_enrolls_every_good_line_and_reports_the_others() {
    let host = Host::new();
    // Already enrolled: its line must fail and its record stay.
    let before = host.ok(&["enroll", "--user", "daemon", "--json"]);
    let daemon: Value = serde_json::from_slice(&before.stdout).unwrap();
    let file = host.dir.path().join("users.jsonl");
    write(
        &file,
        concat!(
            "{\"user\": \"bin\"}\n",
            "{\"user\": \"daemon\"}\n",
            "this is not json\n",
            "\n",
            "{\"user\": \"no-such-user-for-bulk-tests\"}\n",
            "{\"uid\": 3, \"device\": \"phone\"}\n",
            "# a comment\n",
            "{\"user\": \"sync\", \"devcie\": \"typo\"}\n",
            "{\"user\": \"games\"}\n",
        ),
    );
    let out = host.run(&["enroll", "--users-from", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Seven lines name a user (the blank line and the comment do not).
    let lines = output_lines(&out);
    assert_eq!(lines.len(), 7, "{}", stdout(&out));

    // Successes: the object `enroll --json` prints, in input order.
    for (object, user, uid, device) in [
        (&lines[0], "bin", 2, "default"),
        (&lines[4], "sys", 3, "phone"),
        (&lines[6], "games", 5, "default"),
    ] {
        assert_eq!(object["user"], user, "{object}");
        assert_eq!(object["uid"], uid);
        assert_eq!(object["device"], device);
        assert_eq!(object["recovery_codes"].as_array().unwrap().len(), 10);
        assert!(object["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"));
        assert!(object.get("error").is_none());
        let s = status(&host, user);
        assert_eq!(s["enrolled"], true, "{user}");
        assert_eq!(s["devices"][0]["name"], device);
        assert_eq!(s["recovery_codes_left"], 10);
    }

    // Failures: the line number, whom it named, and why.
    let error = |i: usize| lines[i]["error"].as_str().unwrap().to_owned();
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["user"], "daemon");
    assert!(error(1).contains("already enrolled"), "{}", lines[1]);
    assert_eq!(lines[2]["line"], 3);
    assert!(lines[2].get("user").is_none());
    assert!(error(2).contains("not a JSON object"), "{}", lines[2]);
    assert_eq!(lines[3]["line"], 5);
    assert_eq!(lines[3]["user"], "no-such-user-for-bulk-tests");
    assert!(lines[3].get("secret").is_none());
    assert_eq!(lines[5]["line"], 8);
    assert_eq!(lines[5]["user"], "sync");
    assert!(error(5).contains("devcie"), "{}", lines[5]);
    assert_eq!(status(&host, "sync")["enrolled"], false);

    // The record enrolled before is the same one: its secret and codes
    // were not replaced (its recovery codes are still all there, and the
    // bulk run printed no secret for it).
    let after = status(&host, "daemon");
    assert_eq!(after["enrolled"], true);
    assert_eq!(after["devices"].as_array().unwrap().len(), 1);
    assert!(lines[1].get("secret").is_none());
    assert_eq!(daemon["user"], "daemon");

    let err = stderr(&out);
    assert!(err.contains("7 lines: 3 enrolled, 4 failed"), "{err}");
}

#[test]
fn users_from_standard_input_all_enrolled_exits_zero() {
    let host = Host::new();
    let out = host.run_with_input(
        &[
            "enroll",
            "--users-from",
            "-",
            "--json",
            "--device",
            "tablet",
        ],
        b"{\"user\": \"man\"}\n{\"uid\": 7, \"device\": \"phone\"}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = output_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["user"], "man");
    assert_eq!(lines[0]["device"], "tablet");
    assert_eq!(lines[1]["user"], "lp");
    assert_eq!(lines[1]["device"], "phone");
    assert_eq!(status(&host, "man")["devices"][0]["name"], "tablet");
    assert_eq!(status(&host, "lp")["enrolled"], true);
    assert!(
        stderr(&out).contains("2 lines: 2 enrolled, 0 failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn force_replaces_every_named_users_record() {
    let host = Host::new();
    let first = host.ok(&["enroll", "--user", "mail", "--json"]);
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let out = host.run_with_input(
        &["enroll", "--users-from", "-", "--json", "--force"],
        b"{\"user\": \"mail\"}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = output_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_ne!(lines[0]["secret"], first["secret"]);
    assert_eq!(status(&host, "mail")["enrolled"], true);
}

#[test]
fn users_from_needs_json_and_names_no_single_user() {
    let host = Host::new();
    let file = host.dir.path().join("users.jsonl");
    write(&file, "{\"user\": \"news\"}\n");
    let path = file.to_str().unwrap();
    for args in [
        vec!["enroll", "--users-from", path],
        vec!["enroll", "--users-from", path, "--json", "--user", "news"],
    ] {
        let out = host.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(status(&host, "news")["enrolled"], false);
    let missing = host.run(&["enroll", "--users-from", "/nonexistent/users", "--json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stdout(&missing).is_empty());
}

#[test]
fn a_broken_output_starts_no_further_user_and_names_the_lost_ones() {
    let host = Host::new();
    let users = [
        "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "backup", "list", "irc", "nobody",
    ];
    let file = host.dir.path().join("users.jsonl");
    let mut text = String::new();
    for u in users {
        text.push_str("{\"user\": \"");
        text.push_str(u);
        text.push_str("\"}\n");
    }
    write(&file, &text);
    // Every write to /dev/full fails (ENOSPC): the first user's secrets
    // cannot be shown.
    let out = std::process::Command::new(&host.bin)
        .arg("--config")
        .arg(&host.config)
        .args(["enroll", "--json", "--users-from"])
        .arg(&file)
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot write the output"), "{err}");
    assert!(err.contains("enroll them again with --force"), "{err}");
    // daemon (uid 1) was first: enrolled, and named as lost.
    assert_eq!(status(&host, "daemon")["enrolled"], true);
    assert!(err.contains("uids: 1"), "{err}");
    let enrolled = users
        .iter()
        .filter(|u| status(&host, u)["enrolled"] == true)
        .count();
    assert!(enrolled < users.len(), "the run went on: {err}");
}
