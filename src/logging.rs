//! Daemon logs: human-readable lines on a terminal, JSON under systemd's
//! journal (or when configured). `AGENTJAIL_LOG` filters (same syntax as
//! `RUST_LOG`; default `info`).

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// The audit log's target: its events' message is the record, as JSON.
const AUDIT_TARGET: &str = "agentjail::audit";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("AGENTJAIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        // systemd sets JOURNAL_STREAM when stderr goes to the journal.
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_target(false);
        builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(AuditAsObject(format))
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// JSON logs with each audit record as an object under `audit` (not a
/// string inside `message`), so `jq 'select(.audit) | .audit.agent'` works;
/// every other event as the JSON formatter writes it.
struct AuditAsObject<F>(F);

impl<S, N, F> FormatEvent<S, N> for AuditAsObject<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().target() == AUDIT_TARGET {
            let mut message = Message(None);
            event.record(&mut message);
            if let Some(record) = message
                .0
                .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            {
                let line = serde_json::json!({
                    "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now())
                        .to_string(),
                    "level": "INFO",
                    "message": "audit record",
                    "audit": record,
                });
                return writeln!(writer, "{line}");
            }
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// Collects an event's `message` field.
struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}
