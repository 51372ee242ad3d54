//! What a session-era client declared it answers at `initialize` (sampling, elicitation,
//! roots), and how a 2026-07-28 upstream reads that in a request's `_meta`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::wire::members::member_key;

/// The input capabilities a session-era client declared at `initialize`: the members of
/// `capabilities` the bridge can serve (`sampling`, `elicitation`, `roots`) and their
/// sub-capabilities, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputCapabilities(u8);

impl InputCapabilities {
    /// Declares nothing: every input request is refused.
    pub const NONE: InputCapabilities = InputCapabilities(0);
    const SAMPLING: u8 = 1;
    const SAMPLING_CONTEXT: u8 = 1 << 1;
    const SAMPLING_TOOLS: u8 = 1 << 2;
    const ELICITATION: u8 = 1 << 3;
    const ELICITATION_FORM: u8 = 1 << 4;
    const ELICITATION_URL: u8 = 1 << 5;
    const ROOTS: u8 = 1 << 6;

    /// Reads the client's `initialize` `capabilities` object; anything unreadable declares
    /// nothing.
    pub fn from_client(capabilities: &RawValue) -> InputCapabilities {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Sub {
            context: Option<serde::de::IgnoredAny>,
            tools: Option<serde::de::IgnoredAny>,
            form: Option<serde::de::IgnoredAny>,
            url: Option<serde::de::IgnoredAny>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Declared {
            sampling: Option<Sub>,
            elicitation: Option<Sub>,
            roots: Option<serde::de::IgnoredAny>,
        }
        let declared: Declared = serde_json::from_str(capabilities.get()).unwrap_or_default();
        let mut bits = 0;
        let mut set = |bit: u8, on: bool| {
            if on {
                bits |= bit;
            }
        };
        if let Some(sampling) = &declared.sampling {
            set(Self::SAMPLING, true);
            set(Self::SAMPLING_CONTEXT, sampling.context.is_some());
            set(Self::SAMPLING_TOOLS, sampling.tools.is_some());
        }
        if let Some(elicitation) = &declared.elicitation {
            set(Self::ELICITATION, true);
            set(Self::ELICITATION_FORM, elicitation.form.is_some());
            set(Self::ELICITATION_URL, elicitation.url.is_some());
        }
        set(Self::ROOTS, declared.roots.is_some());
        InputCapabilities(bits)
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit == bit
    }

    /// Appends the capabilities as a 2026-07-28 upstream reads them in
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]`: written per call, so as text.
    pub fn write_json(self, out: &mut Vec<u8>) {
        /// A capability's bit and name, and those of its modes.
        type Member = (u8, &'static str, &'static [(u8, &'static str)]);
        let members: [Member; 3] = [
            (
                Self::ELICITATION,
                "elicitation",
                &[
                    (Self::ELICITATION_FORM, "form"),
                    (Self::ELICITATION_URL, "url"),
                ],
            ),
            (Self::ROOTS, "roots", &[]),
            (
                Self::SAMPLING,
                "sampling",
                &[
                    (Self::SAMPLING_CONTEXT, "context"),
                    (Self::SAMPLING_TOOLS, "tools"),
                ],
            ),
        ];
        let mut first = true;
        out.push(b'{');
        for (bit, name, modes) in members {
            if !self.has(bit) {
                continue;
            }
            member_key(out, name, &mut first);
            let mut first_mode = true;
            out.push(b'{');
            for (mode_bit, mode) in modes {
                if self.has(*mode_bit) {
                    member_key(out, mode, &mut first_mode);
                    out.extend_from_slice(b"{}");
                }
            }
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// The capability an input request needs that the client did not declare, as the
    /// `requiredCapabilities` object of a -32021 error and its name; `None` when declared.
    pub fn missing(self, method: &str, params: Option<&RawValue>) -> Option<(Value, &'static str)> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Asked<'a> {
            #[serde(borrow)]
            mode: Option<Cow<'a, str>>,
            tools: Option<serde::de::IgnoredAny>,
        }
        let asked: Asked<'_> = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let needs = |bit: u8, required: Value, name: &'static str| {
            (!self.has(bit)).then_some((required, name))
        };
        match method {
            "sampling/createMessage" => needs(Self::SAMPLING, json!({"sampling": {}}), "sampling")
                .or_else(|| {
                    let tools = asked.tools.is_some();
                    let required = json!({"sampling": {"tools": {}}});
                    tools.then(|| needs(Self::SAMPLING_TOOLS, required, "sampling.tools"))?
                }),
            "elicitation/create" => {
                let base = needs(Self::ELICITATION, json!({"elicitation": {}}), "elicitation");
                base.or_else(|| match asked.mode.as_deref() {
                    Some("url") => needs(
                        Self::ELICITATION_URL,
                        json!({"elicitation": {"url": {}}}),
                        "elicitation.url",
                    ),
                    // A client that names no mode takes forms (the spec's implicit form mode).
                    _ if self.has(Self::ELICITATION_URL) => needs(
                        Self::ELICITATION_FORM,
                        json!({"elicitation": {"form": {}}}),
                        "elicitation.form",
                    ),
                    _ => None,
                })
            }
            _ => needs(Self::ROOTS, json!({"roots": {}}), "roots"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn capabilities_keep_the_declared_input_members_and_their_modes() {
        let caps = InputCapabilities::from_client(&raw(
            r#"{"sampling":{"tools":{}},"elicitation":{"form":{},"url":{}},"experimental":{}}"#,
        ));
        let json = |caps: InputCapabilities| {
            let mut out = Vec::new();
            caps.write_json(&mut out);
            serde_json::from_slice::<Value>(&out).expect("valid JSON")
        };
        assert_eq!(
            json(caps),
            json!({"sampling": {"tools": {}}, "elicitation": {"form": {}, "url": {}}})
        );
        let roots = InputCapabilities::from_client(&raw(r#"{"roots":{"listChanged":true}}"#));
        assert_eq!(json(roots), json!({"roots": {}}));
        assert_eq!(json(InputCapabilities::NONE), json!({}));
        assert_eq!(
            InputCapabilities::from_client(&raw("{}")),
            InputCapabilities::NONE
        );
        assert_eq!(
            InputCapabilities::from_client(&raw("[1]")),
            InputCapabilities::NONE
        );
        let nulls = InputCapabilities::from_client(&raw(r#"{"sampling":null,"roots":null}"#));
        assert_eq!(nulls, InputCapabilities::NONE);
    }

    #[test]
    fn an_input_request_needs_the_capability_of_its_method_and_mode() {
        let sampling = InputCapabilities::from_client(&raw(r#"{"sampling":{}}"#));
        assert!(sampling.missing("sampling/createMessage", None).is_none());
        let with_tools = raw(r#"{"messages":[],"maxTokens":5,"tools":[]}"#);
        let (required, name) = sampling
            .missing("sampling/createMessage", Some(&with_tools))
            .unwrap();
        assert_eq!(
            (required, name),
            (json!({"sampling": {"tools": {}}}), "sampling.tools")
        );
        let (required, name) = sampling.missing("roots/list", None).unwrap();
        assert_eq!((required, name), (json!({"roots": {}}), "roots"));
        let (_, name) = sampling.missing("elicitation/create", None).unwrap();
        assert_eq!(name, "elicitation");

        let implicit_form = InputCapabilities::from_client(&raw(r#"{"elicitation":{}}"#));
        let form = raw(r#"{"message":"m","requestedSchema":{}}"#);
        assert!(implicit_form
            .missing("elicitation/create", Some(&form))
            .is_none());
        let url = raw(r#"{"mode":"url","message":"m","url":"https://x","elicitationId":"1"}"#);
        let (_, name) = implicit_form
            .missing("elicitation/create", Some(&url))
            .unwrap();
        assert_eq!(name, "elicitation.url");
        let url_only = InputCapabilities::from_client(&raw(r#"{"elicitation":{"url":{}}}"#));
        assert!(url_only.missing("elicitation/create", Some(&url)).is_none());
        let (_, name) = url_only.missing("elicitation/create", Some(&form)).unwrap();
        assert_eq!(name, "elicitation.form");
    }
}
