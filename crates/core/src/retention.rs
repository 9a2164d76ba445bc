//! How long the audit trail keeps events: the container's time to live (`defaultTtl`), what
//! is in force, and the change that sets it (what `acr-webhook init --retention-days` sends as
//! a `PUT` of the container, with everything else in it as it was).
//!
//! Cosmos DB deletes a document `defaultTtl` seconds after its last write, by itself, in the
//! background; deleted documents are gone for good. The property has three states (Microsoft
//! Learn, "Time to Live (TTL) in Azure Cosmos DB"):
//! - absent: time to live is off; no document ever expires, not even one with its own `ttl`;
//! - `-1`: time to live is on without a default: only documents that carry their own `ttl`
//!   expire (this receiver writes none);
//! - `n > 0`: every document expires `n` seconds after its last write, unless it carries its
//!   own `ttl`.
//!
//! `--retention-days off` removes the property (absent), the only state in which nothing can
//! expire: what an audit trail under a legal hold needs.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::indexing::{container_object, etag, replace_body, UnusableContainer};

/// The container property that holds the time to live, in seconds.
pub const DEFAULT_TTL: &str = "defaultTtl";

/// Seconds in a day of retention.
pub const SECONDS_PER_DAY: u32 = 86_400;

/// The longest `defaultTtl` Cosmos DB takes: 2,147,483,647 seconds (a signed 32-bit integer).
pub const MAX_TTL_SECONDS: u32 = i32::MAX as u32;

/// The longest retention in whole days that fits [`MAX_TTL_SECONDS`] (about 68 years).
pub const MAX_RETENTION_DAYS: u32 = MAX_TTL_SECONDS / SECONDS_PER_DAY;

/// The retention asked for: `off`, or a number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep every event until someone deletes it: no `defaultTtl`.
    Off,
    /// Delete each event this many days after it was written.
    Days(u32),
}

/// Why a `--retention-days` value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a whole number of days from 1 to {MAX_RETENTION_DAYS}, or `off` (keep events until \
     deleted)"
)]
pub struct InvalidRetention;

impl FromStr for Retention {
    type Err = InvalidRetention;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        match text.parse::<u32>() {
            Ok(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => Ok(Self::Days(days)),
            _ => Err(InvalidRetention),
        }
    }
}

impl Retention {
    /// The time to live this retention sets.
    pub fn ttl(self) -> Ttl {
        match self {
            Self::Off => Ttl::Off,
            Self::Days(days) => Ttl::Seconds(days * SECONDS_PER_DAY),
        }
    }
}

/// The time to live in force on a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No `defaultTtl`: nothing expires.
    Off,
    /// `defaultTtl: -1`: on, without a default; only documents with their own `ttl` expire.
    OnWithoutDefault,
    /// `defaultTtl: n`: a document is deleted `n` seconds after its last write.
    Seconds(u32),
}

impl Ttl {
    /// The value of `defaultTtl` for this state (`None`: the property is left out).
    pub fn default_ttl(self) -> Option<i64> {
        match self {
            Self::Off => None,
            Self::OnWithoutDefault => Some(-1),
            Self::Seconds(seconds) => Some(i64::from(seconds)),
        }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => write!(
                f,
                "off (no defaultTtl): events are kept until someone deletes them"
            ),
            Self::OnWithoutDefault => write!(
                f,
                "on without a default (defaultTtl -1): only documents that carry their own `ttl` \
                 expire, and this receiver writes none"
            ),
            Self::Seconds(seconds) if seconds % SECONDS_PER_DAY == 0 => write!(
                f,
                "{} days (defaultTtl {seconds} s): Cosmos DB deletes each event that long after \
                 it was written",
                seconds / SECONDS_PER_DAY
            ),
            Self::Seconds(seconds) => write!(
                f,
                "{seconds} s (defaultTtl {seconds}, not a whole number of days): Cosmos DB \
                 deletes each event that long after it was written"
            ),
        }
    }
}

/// The time to live of `container` (the JSON of `GET /dbs/{db}/colls/{coll}`).
pub fn in_force(container: &Value) -> Result<Ttl, UnusableContainer> {
    let object = container_object(container)?;
    match object.get(DEFAULT_TTL) {
        None | Some(Value::Null) => Ok(Ttl::Off),
        Some(value) => match value.as_i64() {
            Some(-1) => Ok(Ttl::OnWithoutDefault),
            Some(seconds) if seconds > 0 && seconds <= i64::from(MAX_TTL_SECONDS) => {
                Ok(Ttl::Seconds(seconds as u32))
            }
            _ => Err(UnusableContainer(
                "`defaultTtl` is neither -1 nor a positive number of seconds",
            )),
        },
    }
}

/// What setting a retention on a container takes.
#[derive(Debug, Clone, PartialEq)]
pub enum RetentionPlan {
    /// The container has that time to live already.
    Ready(Ttl),
    /// `container` is the body of the `PUT` that sets it: every property as it was, with
    /// `defaultTtl` set or left out.
    Change {
        /// The container's properties to send back (system properties left out).
        container: Value,
        /// The `_etag` it was read with, for `If-Match`.
        etag: Option<String>,
        /// The time to live before.
        from: Ttl,
        /// The time to live after.
        to: Ttl,
    },
}

/// Plans setting `wanted` on `container`: nothing when it is in force already, otherwise its
/// properties with `defaultTtl` changed and nothing else.
pub fn plan(container: &Value, wanted: Retention) -> Result<RetentionPlan, UnusableContainer> {
    let from = in_force(container)?;
    let to = wanted.ttl();
    if from == to {
        return Ok(RetentionPlan::Ready(from));
    }
    let object = container_object(container)?;
    let mut body = replace_body(object);
    match to.default_ttl() {
        Some(seconds) => body.insert(DEFAULT_TTL.into(), Value::from(seconds)),
        None => body.remove(DEFAULT_TTL),
    };
    Ok(RetentionPlan::Change {
        container: Value::Object(body),
        etag: etag(object),
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(default_ttl: Option<Value>) -> Value {
        let mut c = json!({
            "id": "events",
            "partitionKey": {"paths": ["/image"], "kind": "Hash", "version": 2},
            "indexingPolicy": {"indexingMode": "consistent", "compositeIndexes": [[{"path": "/x"}, {"path": "/y"}]]},
            "uniqueKeyPolicy": {"uniqueKeys": [{"paths": ["/digest"]}]},
            "_rid": "PaAfAPqHYgE=",
            "_ts": 1459194239,
            "_etag": "\"00005900-0000-0000-0000-56f9a27f0000\""
        });
        if let Some(ttl) = default_ttl {
            c["defaultTtl"] = ttl;
        }
        c
    }

    #[test]
    fn retention_values() {
        assert_eq!("off".parse(), Ok(Retention::Off));
        assert_eq!(" OFF ".parse(), Ok(Retention::Off));
        assert_eq!("90".parse(), Ok(Retention::Days(90)));
        assert_eq!("1".parse(), Ok(Retention::Days(1)));
        assert_eq!(
            MAX_RETENTION_DAYS.to_string().parse(),
            Ok(Retention::Days(24_855))
        );
        for wrong in ["0", "-1", "24856", "1.5", "", "ninety", "90d", "on"] {
            assert_eq!(
                wrong.parse::<Retention>(),
                Err(InvalidRetention),
                "{wrong:?}"
            );
        }
        assert_eq!(Retention::Days(90).ttl(), Ttl::Seconds(7_776_000));
        assert!(
            Retention::Days(MAX_RETENTION_DAYS)
                .ttl()
                .default_ttl()
                .unwrap()
                <= i64::from(i32::MAX)
        );
        assert_eq!(Retention::Off.ttl().default_ttl(), None);
    }

    #[test]
    fn what_is_in_force() {
        assert_eq!(in_force(&container(None)), Ok(Ttl::Off));
        assert_eq!(in_force(&container(Some(Value::Null))), Ok(Ttl::Off));
        assert_eq!(
            in_force(&container(Some(json!(-1)))),
            Ok(Ttl::OnWithoutDefault)
        );
        assert_eq!(
            in_force(&container(Some(json!(86400)))),
            Ok(Ttl::Seconds(86_400))
        );
        for wrong in [
            json!(0),
            json!(-2),
            json!("90"),
            json!(2_147_483_648_i64),
            json!(1.5),
        ] {
            assert!(
                in_force(&container(Some(wrong.clone()))).is_err(),
                "{wrong}"
            );
        }
        assert!(in_force(&json!({"id": "x"})).is_err(), "no partitionKey");
    }

    #[test]
    fn ttl_in_words() {
        assert!(Ttl::Off.to_string().starts_with("off (no defaultTtl)"));
        assert!(Ttl::OnWithoutDefault.to_string().contains("defaultTtl -1"));
        assert!(Ttl::Seconds(7_776_000)
            .to_string()
            .starts_with("90 days (defaultTtl 7776000 s)"));
        assert!(Ttl::Seconds(3600)
            .to_string()
            .starts_with("3600 s (defaultTtl 3600, not a whole"));
    }

    #[test]
    fn setting_days_changes_only_default_ttl() {
        for before in [None, Some(json!(-1)), Some(json!(3600))] {
            let read = container(before.clone());
            let RetentionPlan::Change {
                container: body,
                etag,
                to,
                ..
            } = plan(&read, Retention::Days(30)).unwrap()
            else {
                panic!("a change from {before:?}");
            };
            assert_eq!(to, Ttl::Seconds(2_592_000));
            assert_eq!(
                etag.as_deref(),
                Some("\"00005900-0000-0000-0000-56f9a27f0000\"")
            );
            let mut expected = read.clone();
            let object = expected.as_object_mut().unwrap();
            object.retain(|name, _| !name.starts_with('_'));
            object.insert("defaultTtl".into(), json!(2_592_000));
            assert_eq!(body, expected);
            // Applied, the plan is done.
            assert_eq!(
                plan(&body, Retention::Days(30)).unwrap(),
                RetentionPlan::Ready(Ttl::Seconds(2_592_000))
            );
        }
    }

    #[test]
    fn off_removes_default_ttl_also_minus_one() {
        for before in [json!(-1), json!(86400)] {
            let read = container(Some(before.clone()));
            let RetentionPlan::Change {
                container: body,
                from,
                to,
                ..
            } = plan(&read, Retention::Off).unwrap()
            else {
                panic!("a change from {before}");
            };
            assert_ne!(from, Ttl::Off);
            assert_eq!(to, Ttl::Off);
            assert!(body.get("defaultTtl").is_none(), "{body}");
            assert_eq!(body["indexingPolicy"], read["indexingPolicy"]);
            assert_eq!(body["uniqueKeyPolicy"], read["uniqueKeyPolicy"]);
        }
        assert_eq!(
            plan(&container(None), Retention::Off).unwrap(),
            RetentionPlan::Ready(Ttl::Off)
        );
    }
}
