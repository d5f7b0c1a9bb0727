//! The format versions of the records a build writes (docs/formats.md): every record says which
//! format it is in (`"format": "galley-results/2"`, its first key), galley reads the versions it
//! knows (upgrading older ones to the current shape) and refuses any other with a message that names
//! the file, the version found and the versions it reads.
//!
//! Version 1 is what galley wrote before records carried a version: `results.json` an object of
//! blocks, `trail.json` and `reproduction.json` bare arrays, `provenance.json` an object without
//! `format`. Version 2 wraps each in an object whose `format` key names record and version (a bare
//! array has no room for one, and a top-level `format` key in `results.json` could be a block's id).
//!
//! To change a record's format later: raise its `current` version here, teach [`Record::upgrade`]
//! the step from the previous version (and [`Record::write_as`] the step back, which `galley verify`
//! needs to compare a report of the previous version with its rebuild), and add the version to the
//! history in docs/formats.md.

use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Result};

/// A machine-readable record of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Results,
    Trail,
    Provenance,
    Reproduction,
}

/// The version of every record written before records carried one.
pub const UNVERSIONED: u32 = 1;

impl Record {
    pub const ALL: [Record; 4] = [
        Record::Results,
        Record::Trail,
        Record::Provenance,
        Record::Reproduction,
    ];

    /// The file's name in an output folder.
    pub fn file(self) -> &'static str {
        match self {
            Record::Results => "results.json",
            Record::Trail => "trail.json",
            Record::Provenance => "provenance.json",
            Record::Reproduction => "reproduction.json",
        }
    }

    /// The record a file of an output folder is, by its name.
    pub fn of_file(name: &str) -> Option<Record> {
        Record::ALL.into_iter().find(|r| r.file() == name)
    }

    /// The format's name, before the `/` of its stamp.
    pub fn name(self) -> &'static str {
        match self {
            Record::Results => "galley-results",
            Record::Trail => "galley-trail",
            Record::Provenance => "galley-provenance",
            Record::Reproduction => "galley-reproduction",
        }
    }

    /// The version this galley writes (and the newest it reads).
    pub fn current(self) -> u32 {
        2
    }

    /// `galley-results/2`: the `format` value of the version this galley writes.
    pub fn stamp(self) -> String {
        format!("{}/{}", self.name(), self.current())
    }

    /// Where a versioned record keeps its content: the blocks of results, the entries of the trail,
    /// the rows of the reproduction; `None` for the provenance, whose keys sit beside `format`.
    fn payload_key(self) -> Option<&'static str> {
        match self {
            Record::Results => Some("blocks"),
            Record::Trail => Some("entries"),
            Record::Reproduction => Some("rows"),
            Record::Provenance => None,
        }
    }

    /// What the record's content is: an `array` (trail, reproduction) or an `object`.
    fn content_type(self) -> &'static str {
        match self {
            Record::Trail | Record::Reproduction => "array",
            Record::Results | Record::Provenance => "object",
        }
    }

    /// Whether `value` has the shape of the record's content (all of version 1).
    fn is_content(self, value: &Value) -> bool {
        match self {
            Record::Trail | Record::Reproduction => value.is_array(),
            Record::Results | Record::Provenance => value.is_object(),
        }
    }

    /// The record as this galley writes it: the stamp first, then the content (for the provenance,
    /// an object, its keys in their order).
    pub fn wrap(self, content: Value) -> Value {
        let mut record = Map::new();
        record.insert("format".into(), Value::String(self.stamp()));
        match (self.payload_key(), content) {
            (Some(key), content) => {
                record.insert(key.into(), content);
            }
            (None, Value::Object(fields)) => {
                record.extend(fields.into_iter().filter(|(k, _)| k != "format"));
            }
            // Not a provenance record (version checks refuse it before it gets here).
            (None, other) => return other,
        }
        Value::Object(record)
    }

    /// The record's content, in any version this galley reads: the blocks of results, the entries
    /// of the trail, the rows of the reproduction, the provenance itself.
    pub fn content(self, record: &Value) -> &Value {
        match (self.payload_key(), record.get("format")) {
            (Some(key), Some(Value::String(_))) => record.get(key).unwrap_or(&Value::Null),
            _ => record,
        }
    }

    /// A record's bytes as galley writes them: pretty JSON and a final line end. A record that
    /// cannot be written is an error naming it, never an empty file.
    pub fn to_bytes(self, record: &Value) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| {
            Diagnostic::error(format!("`{}` could not be written: {e}", self.file()))
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The version of a parsed record; `file` is where it was read, for messages. A version this
    /// galley does not read, or a record of another kind, is an error.
    pub fn version(self, record: &Value, file: &Path) -> Result<u32> {
        let at = |message: String| -> crate::diagnostics::Failure {
            Diagnostic::error(message).in_file(file).into()
        };
        let (name, file_name) = (self.name(), self.file());
        let stamp = match record.get("format") {
            Some(Value::String(stamp)) => stamp,
            // Version 1 of results is an object of blocks: `format` there is a block's id.
            Some(other) if self != Record::Results => {
                return Err(at(format!(
                    "`format` in `{file_name}` is {}, expected a string such as `{}`",
                    crate::diagnostics::excerpt(&other.to_string()),
                    self.stamp()
                )));
            }
            _ if self.is_content(record) => {
                return Ok(UNVERSIONED);
            }
            _ => {
                return Err(at(format!(
                    "`{file_name}` is not a galley record (expected a JSON object with a `format` key such as `{}`)",
                    self.stamp()
                )));
            }
        };
        let shown = crate::diagnostics::excerpt(stamp);
        let (found_name, version) = stamp.rsplit_once('/').unwrap_or((stamp, ""));
        if found_name != name {
            let other = Record::ALL.into_iter().find(|r| r.name() == found_name);
            return Err(at(match other {
                Some(other) => format!(
                    "`{file_name}` holds a `{}` record (`{shown}`), not a `{name}` record: is it the `{}` of the report?",
                    other.name(),
                    other.file()
                ),
                None => format!(
                    "`format` in `{file_name}` is `{shown}`, expected `{name}/` and a version, such as `{}`",
                    self.stamp()
                ),
            }));
        }
        match version.parse::<u32>() {
            // The content has the shape it had in version 1 (an object of blocks, an array).
            Ok(v) if (UNVERSIONED..=self.current()).contains(&v) => {
                match (self.payload_key(), self.is_content(self.content(record))) {
                    (Some(key), false) => Err(at(format!(
                        "`{file_name}` has no `{key}` {}",
                        self.content_type()
                    ))),
                    _ => Ok(v),
                }
            }
            _ => Err(Diagnostic::error(format!(
                "`{file_name}` is in format `{shown}`, which this galley ({}) does not read: it reads {name} versions {}",
                env!("CARGO_PKG_VERSION"),
                self.versions_read()
            ))
            .in_file(file)
            .hint("a newer galley wrote it: read it with that galley, or rebuild the report with this one")
            .into()),
        }
    }

    /// `1 and 2`, `1, 2 and 3`: the versions this galley reads, for messages.
    fn versions_read(self) -> String {
        let all: Vec<String> = (UNVERSIONED..=self.current())
            .map(|v| v.to_string())
            .collect();
        match all.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => all.join(""),
        }
    }

    /// The record in `bytes` (read from `file`), checked and upgraded to the version this galley
    /// writes, so that every reader sees one shape.
    pub fn read(self, bytes: &[u8], file: &Path) -> Result<Value> {
        let record: Value = serde_json::from_slice(bytes).map_err(|e| {
            Diagnostic::error(format!("`{}` is not valid JSON: {e}", self.file())).in_file(file)
        })?;
        let version = self.version(&record, file)?;
        Ok(self.upgrade(record, version))
    }

    /// A record of `version` (checked) in the shape of the current version.
    fn upgrade(self, record: Value, version: u32) -> Value {
        match version {
            UNVERSIONED => self.wrap(record),
            _ => record,
        }
    }

    /// A current record's bytes as a galley writing `version` wrote them: `galley verify` compares
    /// a report of an earlier format with its rebuild this way, so this knows every version
    /// [`Record::version`] accepts.
    pub fn write_as(self, record: &Value, version: u32) -> Result<Vec<u8>> {
        match version {
            v if v == self.current() => self.to_bytes(record),
            UNVERSIONED => {
                let content = match self.content(record) {
                    Value::Object(fields) if self.payload_key().is_none() => Value::Object(
                        fields
                            .iter()
                            .filter(|(k, _)| *k != "format")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    content => content.clone(),
                };
                self.to_bytes(&content)
            }
            _ => Err(Diagnostic::error(format!(
                "`{}` cannot be written in version {version} of {}",
                self.file(),
                self.name()
            ))
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(r: Result<u32>) -> String {
        r.unwrap_err().diagnostics[0].message.clone()
    }

    #[test]
    fn version_1_is_the_unversioned_shape_and_upgrades_to_the_current_one() {
        let file = Path::new("results.json");
        // A block may be called `format`: in version 1 that is an object, not a stamp.
        let v1 = json!({"format": {"kind": "count", "result": {"n": 1}}});
        assert_eq!(Record::Results.version(&v1, file).unwrap(), 1);
        let up = Record::Results.upgrade(v1.clone(), 1);
        assert_eq!(up, json!({"format": "galley-results/2", "blocks": v1}));
        assert_eq!(Record::Results.version(&up, file).unwrap(), 2);
        assert_eq!(Record::Results.content(&up), &v1);
        assert_eq!(Record::Results.content(&v1), &v1);
        assert_eq!(Record::Trail.version(&json!([]), file).unwrap(), 1);
        let prov = json!({"galley_version": "0.1.0", "inputs": {}});
        let up = Record::Provenance.upgrade(prov.clone(), 1);
        assert_eq!(
            serde_json::to_string(&up).unwrap(),
            r#"{"format":"galley-provenance/2","galley_version":"0.1.0","inputs":{}}"#
        );
        // Written back as version 1, byte for byte what the unversioned galley wrote.
        let back = Record::Provenance.write_as(&up, 1).unwrap();
        assert_eq!(back, Record::Provenance.to_bytes(&prov).unwrap());
    }

    #[test]
    fn every_version_read_can_be_written_back() {
        // `galley verify` compares a report of any version it reads with its rebuild by writing the
        // rebuild in that version: a new version must come with its way back.
        for record in Record::ALL {
            let current = record.upgrade(record.wrap(json!([])), record.current());
            for version in UNVERSIONED..=record.current() {
                assert!(
                    record.write_as(&current, version).is_ok(),
                    "{record:?} {version}"
                );
            }
            assert!(record.write_as(&current, record.current() + 1).is_err());
        }
    }

    #[test]
    fn other_shapes_kinds_and_versions_are_refused_by_name() {
        let file = Path::new("out/trail.json");
        assert_eq!(
            message(Record::Trail.version(&json!({"format": "galley-trail/3"}), file)),
            format!(
                "`trail.json` is in format `galley-trail/3`, which this galley ({}) does not read: it reads galley-trail versions 1 and 2",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            message(Record::Trail.version(&json!({"format": "galley-trail/0"}), file)),
            format!(
                "`trail.json` is in format `galley-trail/0`, which this galley ({}) does not read: it reads galley-trail versions 1 and 2",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            message(Record::Trail.version(&json!({"format": "galley-results/2"}), file)),
            "`trail.json` holds a `galley-results` record (`galley-results/2`), not a `galley-trail` record: is it the `results.json` of the report?"
        );
        assert_eq!(
            message(Record::Trail.version(&json!({"entries": []}), file)),
            "`trail.json` is not a galley record (expected a JSON object with a `format` key such as `galley-trail/2`)"
        );
        assert_eq!(
            message(Record::Provenance.version(&json!({"format": 2}), file)),
            "`format` in `provenance.json` is 2, expected a string such as `galley-provenance/2`"
        );
        assert_eq!(
            message(Record::Trail.version(&json!({"format": "galley-trail/2"}), file)),
            "`trail.json` has no `entries` array"
        );
        assert_eq!(
            message(
                Record::Results.version(&json!({"format": "galley-results/2", "blocks": []}), file)
            ),
            "`results.json` has no `blocks` object"
        );
        assert_eq!(
            message(Record::Provenance.version(&json!("x"), file)),
            "`provenance.json` is not a galley record (expected a JSON object with a `format` key such as `galley-provenance/2`)"
        );
        assert_eq!(
            message(Record::Results.version(&json!([]), file)),
            "`results.json` is not a galley record (expected a JSON object with a `format` key such as `galley-results/2`)"
        );
    }
}
