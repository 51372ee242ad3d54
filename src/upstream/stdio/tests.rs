//! Stdio upstream tests: real children (`cat`, `sh -c`) on a real glommio executor.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use glommio::LocalExecutorBuilder;

use super::*;

thread_local! {
    static LOGGED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn capture(line: fmt::Arguments<'_>) {
    LOGGED.with(|logged| logged.borrow_mut().push(line.to_string()));
}

fn logged() -> Vec<String> {
    LOGGED.with(|logged| logged.borrow().clone())
}

/// Runs `future` on a glommio executor on this thread, as a shard would.
fn on_executor<T>(future: impl Future<Output = T>) -> T {
    LocalExecutorBuilder::default()
        .io_memory(512 * 1024)
        .make()
        .expect("glommio executor starts")
        .run(future)
}

fn sh(script: &str) -> StdioSpec {
    StdioSpec {
        name: "t".to_owned(),
        command: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
        env: Vec::new(),
        cwd: None,
    }
}

/// Limits short enough for tests: restarts after 50 ms, SIGKILL 200 ms after SIGTERM.
fn quick() -> StdioLimits {
    StdioLimits {
        restart_backoff_ms: 50,
        restart_backoff_max_ms: 400,
        kill_grace_ms: 200,
        exit_poll_ms: 50,
        ..StdioLimits::default()
    }
}

fn start(spec: StdioSpec, limits: StdioLimits) -> StdioUpstream {
    StdioUpstream::start_with_log(spec, limits, capture)
}

/// The end of a child that wrote nothing on stderr.
fn exited(code: i32, cause: EndCause) -> StdioError {
    StdioError::Exited {
        code,
        cause,
        stderr: StderrTail::default(),
    }
}

/// Whether `pid` is still our child (running or a zombie), from `/proc/<pid>/stat`.
fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let after_comm = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
    let ppid: u32 = after_comm.split(' ').nth(1).unwrap().parse().unwrap();
    ppid == std::process::id()
}

/// Waits up to 2 s for `pid` to be reaped (gone from our children, zombie or not).
async fn assert_reaped(pid: u32) {
    for _ in 0..200 {
        if !is_our_child(pid) {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("child {pid} is still our child (alive or zombie) after 2 s");
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn recv_within(upstream: &StdioUpstream, ms: u64) -> Result<Vec<u8>, StdioError> {
    let timeout = async {
        sleep(Duration::from_millis(ms)).await;
        panic!("nothing received within {ms} ms");
    };
    or(upstream.recv(), timeout).await
}

#[test]
fn cat_echoes_each_message_in_order_and_counts_lines() {
    on_executor(async {
        let upstream = start(sh("exec cat"), quick());
        let pid = upstream.pid().unwrap();
        for id in 1..=3 {
            let message = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            upstream.send(message.as_bytes()).await.unwrap();
        }
        for id in 1..=3 {
            let message = recv_within(&upstream, 2_000).await.unwrap();
            let expected = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(message, expected.as_bytes());
        }
        let stats = upstream.stats();
        assert_eq!((stats.lines_out, stats.lines_in), (3, 3));
        assert!(stats.running);
        assert_eq!(stats.restarts_total, 0);
        upstream.shutdown().await;
        assert_reaped(pid).await;
        assert_eq!(upstream.recv().await, Err(StdioError::ShutDown));
        assert_eq!(upstream.send(b"{}").await, Err(StdioError::ShutDown));
        assert!(!upstream.stats().running);
    });
}

#[test]
fn send_refuses_messages_over_message_bytes_max_or_with_a_newline() {
    on_executor(async {
        let limits = StdioLimits {
            message_bytes_max: 8,
            ..quick()
        };
        let upstream = start(sh("exec cat"), limits);
        upstream.send(b"12345678").await.unwrap();
        let refused = upstream.send(b"123456789").await.unwrap_err();
        assert_eq!(
            refused,
            StdioError::MessageTooLarge {
                bytes: 9,
                bytes_max: 8
            }
        );
        assert!(
            refused.to_string().contains("message_bytes_max 8"),
            "{refused}"
        );
        let refused = upstream.send(b"{}\n{}").await.unwrap_err();
        assert_eq!(refused, StdioError::EmbeddedNewline { offset: 2 });
        assert_eq!(recv_within(&upstream, 2_000).await.unwrap(), b"12345678");
        assert_eq!(upstream.stats().lines_out, 1);
        upstream.shutdown().await;
    });
}

#[test]
fn stderr_lines_are_logged_with_the_upstream_name_and_cut_to_stderr_line_bytes_max() {
    on_executor(async {
        let limits = StdioLimits {
            stderr_line_bytes_max: 100,
            ..quick()
        };
        let upstream = start(
            sh(r#"echo starting >&2; printf '%0300d\n' 0 >&2; exec cat"#),
            limits,
        );
        let wanted = |lines: &[String]| lines.iter().filter(|l| l.contains("stderr")).count() >= 2;
        for _ in 0..200 {
            if wanted(&logged()) {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        let lines: Vec<String> = logged()
            .into_iter()
            .filter(|l| l.contains("stderr"))
            .collect();
        assert_eq!(lines[0], "upstream t: stderr: starting");
        let cut = format!(
            "upstream t: stderr: {}... (200 bytes over stderr_line_bytes_max 100 cut)",
            "0".repeat(100)
        );
        assert_eq!(lines[1], cut);
        upstream.shutdown().await;
    });
}

#[test]
fn stderr_text_drops_a_character_cut_in_half_only_when_truncated() {
    let text = "aé".as_bytes();
    assert_eq!(stderr_text(&text[..2], true), "a");
    assert_eq!(stderr_text(&text[..2], false), "a\u{fffd}");
    assert_eq!(stderr_text(text, true), "aé");
}

#[test]
fn exiting_child_is_restarted_after_a_doubling_backoff() {
    on_executor(async {
        let upstream = start(sh("exit 3"), quick());
        let mut ends = Vec::new();
        while ends.len() < 4 {
            let ended = recv_within(&upstream, 2_000).await.unwrap_err();
            assert_eq!(ended, exited(3, EndCause::Exited));
            ends.push(Instant::now());
        }
        // Child k+1 starts backoff_k after child k ended: 50, 100, 200 ms.
        for (k, backoff_ms) in [50, 100, 200].into_iter().enumerate() {
            let spacing = ends[k + 1] - ends[k];
            assert!(
                spacing >= Duration::from_millis(backoff_ms),
                "restart {k} came after {spacing:?}, backoff {backoff_ms} ms"
            );
        }
        let stats = upstream.stats();
        assert!(stats.restarts_total >= 3, "{stats:?}");
        assert_eq!(stats.last_exit_code, Some(3));
        upstream.shutdown().await;
    });
}

#[test]
fn child_killed_mid_request_gives_the_waiter_exited_and_is_restarted() {
    on_executor(async {
        let limits = StdioLimits {
            restart_backoff_ms: 300,
            ..quick()
        };
        let upstream = start(sh("read request; exec sleep 30"), limits);
        let first = upstream.pid().unwrap();
        upstream
            .send(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#)
            .await
            .unwrap();
        sleep(Duration::from_millis(50)).await;
        kill("-KILL", first);
        let ended = recv_within(&upstream, 2_000).await.unwrap_err();
        assert_eq!(ended, exited(137, EndCause::Exited));
        assert_reaped(first).await;
        let not_running = upstream.send(b"{}").await.unwrap_err();
        assert_eq!(
            not_running,
            StdioError::NotRunning {
                last: Some(Box::new(exited(137, EndCause::Exited)))
            }
        );
        assert!(
            not_running.to_string().contains("exit code 137"),
            "{not_running}"
        );
        sleep(Duration::from_millis(400)).await;
        let second = upstream.pid().expect("restarted after the backoff");
        assert_ne!(second, first);
        assert_eq!(upstream.stats().restarts_total, 1);
        upstream.shutdown().await;
        assert_reaped(second).await;
    });
}

#[test]
fn sends_blocked_on_a_child_that_does_not_read_get_exited_when_it_dies() {
    on_executor(async {
        let limits = StdioLimits {
            outbound_messages_max: 1,
            ..quick()
        };
        let upstream = Rc::new(start(sh("exec sleep 30"), limits));
        let pid = upstream.pid().unwrap();
        let sender = upstream.clone();
        // 100 messages of 60 KB cannot fit in the socket buffer and a queue of one.
        let flood = glommio::spawn_local(async move {
            let message = vec![b'x'; 60_000];
            for _ in 0..100 {
                sender.send(&message).await?;
            }
            Ok::<(), StdioError>(())
        });
        sleep(Duration::from_millis(100)).await;
        assert!(upstream.stats().lines_out < 100);
        kill("-KILL", pid);
        let blocked = flood.await.unwrap_err();
        assert!(
            matches!(blocked, StdioError::Exited { code: 137, .. }),
            "{blocked:?}"
        );
        assert!(recv_within(&upstream, 2_000).await.is_err());
        assert_reaped(pid).await;
        upstream.shutdown().await;
    });
}

#[test]
fn oversize_line_restarts_the_child_and_is_counted() {
    on_executor(async {
        let limits = StdioLimits {
            message_bytes_max: 1_000,
            ..quick()
        };
        let script = r#"printf '%01000d\n' 0; printf '%02000d\n' 0; exec cat"#;
        let upstream = start(sh(script), limits);
        let first = upstream.pid().unwrap();
        // A line of exactly message_bytes_max passes whole.
        assert_eq!(recv_within(&upstream, 2_000).await.unwrap().len(), 1_000);
        let ended = recv_within(&upstream, 2_000).await.unwrap_err();
        assert_eq!(
            ended,
            exited(143, EndCause::MessageTooLarge { bytes_max: 1_000 })
        );
        assert_reaped(first).await;
        // The restarted child speaks again.
        assert_eq!(recv_within(&upstream, 2_000).await.unwrap().len(), 1_000);
        let stats = upstream.stats();
        assert_eq!((stats.oversize_lines, stats.restarts_total), (1, 1));
        assert_eq!(stats.lines_in, 2);
        upstream.shutdown().await;
    });
}

#[test]
fn exit_is_seen_even_while_a_grandchild_holds_stdout_open() {
    on_executor(async {
        let limits = StdioLimits {
            restart_backoff_ms: 10_000,
            restart_backoff_max_ms: 10_000,
            ..quick()
        };
        let upstream = start(sh("sleep 1 & exit 5"), limits);
        let pid = upstream.pid().unwrap();
        let ended = recv_within(&upstream, 1_000).await.unwrap_err();
        assert_eq!(ended, exited(5, EndCause::Exited));
        assert!(!is_our_child(pid));
        upstream.shutdown().await;
    });
}

#[test]
fn shutdown_kills_a_child_ignoring_eof_and_sigterm_after_two_kill_grace_ms_and_reaps_it() {
    on_executor(async {
        let upstream = start(sh("trap '' TERM; exec sleep 30"), quick());
        let pid = upstream.pid().unwrap();
        let began = Instant::now();
        upstream.shutdown().await;
        assert!(began.elapsed() >= Duration::from_millis(400));
        assert!(!is_our_child(pid));
        assert_eq!(upstream.stats().last_exit_code, Some(137));
        assert!(logged().iter().any(|l| l
            == &format!("upstream t: pid {pid}: child was stopped for shutdown (exit code 137)")));
    });
}

#[test]
fn shutdown_closes_stdin_first_so_a_well_behaved_child_exits_by_itself() {
    on_executor(async {
        let upstream = start(sh("exec cat"), quick());
        let pid = upstream.pid().unwrap();
        let began = Instant::now();
        upstream.shutdown().await;
        assert!(began.elapsed() < Duration::from_millis(200));
        assert!(!is_our_child(pid));
        assert_eq!(upstream.stats().last_exit_code, Some(0));
    });
}

#[test]
fn dropping_the_upstream_stops_and_reaps_its_child() {
    on_executor(async {
        let upstream = start(sh("exec cat"), quick());
        let pid = upstream.pid().unwrap();
        drop(upstream);
        assert_reaped(pid).await;
    });
}

#[test]
fn a_command_that_cannot_start_is_reported_by_send_and_tried_again_after_the_backoff() {
    on_executor(async {
        let dir = std::env::temp_dir().join(format!("shardgate-stdio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("late-server");
        let _ = std::fs::remove_file(&program);
        let spec = StdioSpec {
            command: program.to_str().unwrap().to_owned(),
            args: Vec::new(),
            ..sh("")
        };
        let upstream = start(spec, quick());
        assert_eq!(upstream.pid(), None);
        let error = upstream.send(b"{}").await.unwrap_err();
        let StdioError::NotRunning { last: Some(last) } = &error else {
            panic!("{error:?}");
        };
        assert!(matches!(**last, StdioError::Spawn { .. }), "{last:?}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot start `{}`", program.display()))
                && text.contains("No such file or directory"),
            "{text}"
        );
        assert!(logged().iter().any(|l| l.contains("next try in")));
        // Once the program exists, a later try starts it.
        std::fs::write(&program, "#!/bin/sh\nexec cat\n").unwrap();
        Command::new("chmod")
            .arg("+x")
            .arg(&program)
            .status()
            .unwrap();
        for _ in 0..200 {
            if upstream.pid().is_some() {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        assert!(upstream.pid().is_some(), "started after the backoff");
        assert_eq!(upstream.stats().restarts_total, 0, "the first child to run");
        upstream.send(b"ping").await.unwrap();
        assert_eq!(recv_within(&upstream, 2_000).await.unwrap(), b"ping");
        upstream.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_child_that_exits_is_reported_with_its_exit_code_and_last_stderr_lines() {
    on_executor(async {
        let script =
            r#"echo starting >&2; echo 'missing API_KEY' >&2; printf 'no newline' >&2; exit 1"#;
        let upstream = start(sh(script), quick());
        let ended = recv_within(&upstream, 2_000).await.unwrap_err();
        let StdioError::Exited {
            code: 1,
            cause: EndCause::Exited,
            stderr,
        } = &ended
        else {
            panic!("{ended:?}");
        };
        assert_eq!(
            stderr.to_string(),
            r#""starting", "missing API_KEY", "no newline""#
        );
        assert_eq!(
            ended.to_string(),
            r#"child exited (exit code 1); its last stderr lines: "starting", "missing API_KEY", "no newline""#
        );
        upstream.shutdown().await;
    });
}

#[test]
fn a_child_that_exits_leaving_input_unread_is_reported_as_its_exit_not_a_read_failure() {
    on_executor(async {
        // The unread request makes its exit reset the socket rather than close it.
        let upstream = start(
            sh("sleep 0.2; echo 'fatal: bad config' >&2; exit 2"),
            quick(),
        );
        upstream
            .send(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#)
            .await
            .unwrap();
        let ended = recv_within(&upstream, 2_000).await.unwrap_err();
        let text = ended.to_string();
        assert!(
            matches!(
                ended,
                StdioError::Exited {
                    code: 2,
                    cause: EndCause::Exited,
                    ..
                }
            ),
            "{ended:?}"
        );
        assert!(text.contains("fatal: bad config"), "{text}");
        upstream.shutdown().await;
    });
}

#[test]
fn env_and_cwd_reach_the_child() {
    on_executor(async {
        let spec = StdioSpec {
            env: vec![("SHARDGATE_TEST_VALUE".to_owned(), "v1".to_owned())],
            cwd: Some("/tmp".into()),
            ..sh(r#"echo "$SHARDGATE_TEST_VALUE $(pwd)"; exec cat"#)
        };
        let upstream = start(spec, quick());
        assert_eq!(recv_within(&upstream, 2_000).await.unwrap(), b"v1 /tmp");
        upstream.shutdown().await;
    });
}
