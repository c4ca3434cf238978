//! Reading campaigns from YAML files such as `config/samples`: multi-document streams in which other
//! kinds of resources (a `ChatCluster`, say) may sit beside the campaigns and are passed over.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use crate::resource::{API_VERSION, CouponCampaign, KIND};
use crate::rules::{Campaign, InvalidCampaign};

/// Where a campaign, or a problem with one, was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `None` for text handed to [`parse_yaml`] directly.
    pub file: Option<PathBuf>,
    /// Counted from 1 within the YAML stream, as editors number them.
    pub document: usize,
    /// `metadata.name`, once it can be read.
    pub name: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        write!(f, "document {}", self.document)?;
        if let Some(name) = &self.name {
            write!(f, " (`{name}`)")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not YAML, or a campaign that does not have the resource's shape (unknown or missing fields).
    #[error("{origin}: {source}")]
    Yaml { origin: Origin, source: serde_yaml::Error },
    #[error("{origin}: a Kubernetes resource must be a mapping with `kind` and `apiVersion`")]
    NotAResource { origin: Origin },
    #[error("{origin}: apiVersion of a {KIND} must be `{API_VERSION}`, found {}", shown(.found))]
    ApiVersion { origin: Origin, found: Option<String> },
    #[error("{origin}: {source}")]
    Invalid { origin: Origin, source: InvalidCampaign },
    /// Both origins carry the name.
    #[error("two campaigns have the same name: {first} and {second}")]
    Duplicate { first: Origin, second: Origin },
}

fn shown(found: &Option<String>) -> String {
    found.as_deref().map_or_else(|| "none".to_owned(), |value| format!("`{value}`"))
}

/// Every `CouponCampaign` in a multi-document YAML stream, in order. Other kinds are skipped; a campaign
/// with the wrong `apiVersion`, an unknown field or an invalid value fails the whole stream.
pub fn parse_yaml(text: &str) -> Result<Vec<Campaign>, LoadError> {
    let mut found = Vec::new();
    collect(text, None, &mut found)?;
    Ok(found.into_iter().map(|(_, campaign)| campaign).collect())
}

/// Every `CouponCampaign` document of a YAML stream as JSON, unvalidated, with its number
/// (from 1, as editors count them); other kinds are passed over. For tools that report on the
/// raw objects (`ww campaign check`, `ww-operator render`, the dashboard's check) rather than
/// load them. A stream that expands to more than [`EXPANDED_MAX_BYTES`] (anchors and aliases
/// can make 60 KB of YAML into gigabytes) or holds more than [`DOCUMENTS_MAX`] documents is
/// refused before it is built.
pub fn resources_in_yaml(text: &str) -> Result<Vec<(usize, serde_json::Value)>, serde_yaml::Error> {
    let mut found = Vec::new();
    let budget = bounded::Budget::new(EXPANDED_MAX_BYTES);
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        if index >= DOCUMENTS_MAX {
            return Err(serde::de::Error::custom(format!("more than {DOCUMENTS_MAX} documents")));
        }
        let value = serde::de::DeserializeSeed::deserialize(bounded::Seed(&budget), document)?;
        if value.get("kind").and_then(serde_json::Value::as_str) == Some(KIND) {
            found.push((index + 1, value));
        }
    }
    Ok(found)
}

/// The most a YAML stream read by [`resources_in_yaml`] may expand to (about 16 bytes per value
/// plus its text).
pub const EXPANDED_MAX_BYTES: usize = 8 * 1024 * 1024;
/// The most documents a stream read by [`resources_in_yaml`] may hold.
pub const DOCUMENTS_MAX: usize = 1000;

/// JSON values built from YAML within a size budget, counted as they are built (aliases are
/// replayed node by node, so each copy counts).
mod bounded {
    use std::cell::Cell;
    use std::fmt;

    use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub struct Budget(Cell<usize>);

    impl Budget {
        pub fn new(bytes: usize) -> Self {
            Self(Cell::new(bytes))
        }

        fn spend<E: Error>(&self, bytes: usize) -> Result<(), E> {
            let left = self.0.get().checked_sub(16 + bytes).ok_or_else(|| {
                E::custom(format!(
                    "the YAML expands to more than {} MiB (anchors and aliases repeating large parts?)",
                    super::EXPANDED_MAX_BYTES / (1024 * 1024)
                ))
            })?;
            self.0.set(left);
            Ok(())
        }
    }

    pub struct Seed<'a>(pub &'a Budget);

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;

        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a YAML value")
        }

        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            self.0.spend(0)?;
            Ok(Value::Bool(v))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            self.0.spend(0)?;
            Ok(Value::from(v))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            self.0.spend(0)?;
            Ok(Value::from(v))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            self.0.spend(0)?;
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            self.0.spend(v.len())?;
            Ok(Value::String(v.to_owned()))
        }

        fn visit_unit<E: Error>(self) -> Result<Value, E> {
            self.0.spend(0)?;
            Ok(Value::Null)
        }

        fn visit_none<E: Error>(self) -> Result<Value, E> {
            self.visit_unit()
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            self.deserialize(d)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            self.0.spend(0)?;
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Seed(self.0))? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            self.0.spend(0)?;
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                self.0.spend(key.len())?;
                let value = map.next_value_seed(Seed(self.0))?;
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Every campaign in one YAML file.
pub fn load_file(path: &Path) -> Result<Vec<Campaign>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    let mut found = Vec::new();
    collect(&text, Some(path), &mut found)?;
    Ok(found.into_iter().map(|(_, campaign)| campaign).collect())
}

/// Every campaign in the `*.yaml` and `*.yml` files of `dir`, files taken in file-name order.
/// Campaign names must be unique across all of them.
pub fn load_dir(dir: &Path) -> Result<Vec<Campaign>, LoadError> {
    let read_error = |source| LoadError::Read { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let is_yaml = path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
        collect(&text, Some(&path), &mut found)?;
    }
    Ok(found.into_iter().map(|(_, campaign)| campaign).collect())
}

/// Appends the campaigns of one stream to `found`, rejecting names already there.
fn collect(text: &str, file: Option<&Path>, found: &mut Vec<(Origin, Campaign)>) -> Result<(), LoadError> {
    let mut seen: BTreeMap<String, Origin> =
        found.iter().map(|(origin, campaign)| (campaign.name().to_owned(), origin.clone())).collect();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut origin = Origin { file: file.map(Path::to_owned), document: index + 1, name: None };
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(source) => return Err(LoadError::Yaml { origin, source }),
        };
        // A stream may start or end with `---`, or hold a document of comments only.
        if value.is_null() {
            continue;
        }
        if !value.is_mapping() {
            return Err(LoadError::NotAResource { origin });
        }
        if value.get("kind").and_then(Value::as_str) != Some(KIND) {
            continue;
        }
        origin.name = value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_owned);
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        if api_version != Some(API_VERSION) {
            return Err(LoadError::ApiVersion { origin, found: api_version.map(str::to_owned) });
        }
        let resource: CouponCampaign = match serde_yaml::from_value(value) {
            Ok(resource) => resource,
            Err(source) => return Err(LoadError::Yaml { origin, source }),
        };
        let name = resource.metadata.name.unwrap_or_default();
        let (uid, generation) = (resource.metadata.uid.unwrap_or_default(), resource.metadata.generation.unwrap_or(0));
        let campaign = match Campaign::new(&name, resource.spec) {
            Ok(campaign) => campaign.with_identity(uid, generation),
            Err(source) => return Err(LoadError::Invalid { origin, source }),
        };
        if let Some(first) = seen.get(campaign.name()) {
            return Err(LoadError::Duplicate { first: first.clone(), second: origin });
        }
        seen.insert(campaign.name().to_owned(), origin.clone());
        found.push((origin, campaign));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_bomb_is_refused_before_it_is_built() {
        // 60 KB of YAML that would expand to about 150 million strings.
        let row = vec!["x"; 15_000].join(",");
        let aliases = vec!["*a"; 9_900].join(",");
        let bomb = format!("a: &a [{row}]\nb: [{aliases}]\n");
        assert!(bomb.len() < 64 * 1024);
        let started = std::time::Instant::now();
        let error = resources_in_yaml(&bomb).unwrap_err().to_string();
        assert!(error.contains("expands to more than"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Ordinary anchors still work.
        let fine = "kind: CouponCampaign\nmetadata: &m {name: x}\nspec: {copy: *m}\n";
        assert_eq!(resources_in_yaml(fine).unwrap()[0].1["spec"]["copy"]["name"], "x");
        let many = "---\na: 1\n".repeat(DOCUMENTS_MAX + 1);
        assert!(resources_in_yaml(&many).unwrap_err().to_string().contains("documents"));
    }
    use crate::resource::MissionRequirement;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/samples");

    const CAMPAIGN: &str = "\
apiVersion: weatherwise.io/v1alpha1
kind: CouponCampaign
metadata:
  name: rainy-day-pass
spec:
  displayName: Rainy Day Pass
  coupon:
    title: Umbrella discount
    benefit: 20% off an umbrella
    validityDays: 7
  schedule:
    timeZone: Asia/Seoul
    startDate: 2026-12-07
    endDate: 2026-12-13
    opensAt: \"10:00\"
  quota:
    dailyQuantity: 1000
";

    const CHAT_CLUSTER: &str = "\
apiVersion: weatherwise.io/v1alpha1
kind: ChatCluster
metadata:
  name: chat
spec:
  replicas: 3
";

    #[test]
    fn every_sample_loads() {
        let campaigns = load_dir(Path::new(SAMPLES)).unwrap();
        let names: Vec<&str> = campaigns.iter().map(Campaign::name).collect();
        assert_eq!(names, ["daily-demo", "first-snow-latte", "rainy-day-pass"]);
        let full = campaigns[1].spec();
        assert_eq!(full.quota.total_quantity, Some(5000));
        assert!(full.schedule.closes_at.is_some());
        assert_eq!(full.eligibility.mission, MissionRequirement::VerifiedSameDay);
        let minimal = campaigns[2].spec();
        assert_eq!((minimal.quota.per_user, minimal.schedule.closes_at), (1, None));
    }

    #[test]
    fn a_chat_cluster_beside_a_campaign_is_skipped() {
        let text = format!("---\n{CHAT_CLUSTER}---\n{CAMPAIGN}---\n");
        let campaigns = parse_yaml(&text).unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].name(), "rainy-day-pass");
    }

    #[test]
    fn an_unknown_spec_field_is_rejected() {
        let text = CAMPAIGN.replace("  displayName:", "  colour: blue\n  displayName:");
        let error = parse_yaml(&text).unwrap_err();
        assert!(matches!(error, LoadError::Yaml { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("document 1 (`rainy-day-pass`): "), "{message}");
        assert!(message.contains("unknown field `colour`"), "{message}");
    }

    #[test]
    fn a_campaign_with_another_api_version_is_rejected() {
        let text = format!("{CHAT_CLUSTER}---\n{}", CAMPAIGN.replace("v1alpha1", "v1"));
        let message = parse_yaml(&text).unwrap_err().to_string();
        assert_eq!(
            message,
            "document 2 (`rainy-day-pass`): apiVersion of a CouponCampaign must be `weatherwise.io/v1alpha1`, \
             found `weatherwise.io/v1`"
        );
    }

    #[test]
    fn a_campaign_without_an_api_version_is_rejected() {
        let message =
            parse_yaml(&CAMPAIGN.replace("apiVersion: weatherwise.io/v1alpha1\n", "")).unwrap_err().to_string();
        assert!(message.ends_with("found none"), "{message}");
    }

    #[test]
    fn an_invalid_campaign_names_its_document_and_problems() {
        let text = CAMPAIGN.replace("Asia/Seoul", "Mars/Olympus").replace("1000", "0");
        let message = parse_yaml(&text).unwrap_err().to_string();
        assert!(message.starts_with("document 1 (`rainy-day-pass`): spec.schedule.timeZone: "), "{message}");
        assert!(message.contains("; spec.quota.dailyQuantity: 0 is not within"), "{message}");
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_rejected() {
        let error = parse_yaml(&format!("{CAMPAIGN}---\n- just\n- a list\n")).unwrap_err();
        assert!(matches!(error, LoadError::NotAResource { origin: Origin { document: 2, .. } }), "{error:?}");
    }

    #[test]
    fn broken_yaml_names_the_document() {
        let error = parse_yaml(&format!("{CAMPAIGN}---\nkind: [unclosed\n")).unwrap_err();
        assert!(matches!(error, LoadError::Yaml { origin: Origin { document: 2, .. }, .. }), "{error:?}");
    }

    #[test]
    fn an_empty_stream_has_no_campaigns() {
        assert!(parse_yaml("").unwrap().is_empty());
        assert!(parse_yaml("---\n# nothing here\n---\n").unwrap().is_empty());
    }

    #[test]
    fn files_load_in_name_order_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let second = CAMPAIGN.replace("rainy-day-pass", "b-campaign");
        std::fs::write(dir.path().join("b.yml"), second).unwrap();
        std::fs::write(dir.path().join("a.yaml"), CAMPAIGN).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "kind: [not yaml").unwrap();
        std::fs::create_dir(dir.path().join("nested.yaml")).unwrap();
        let names: Vec<String> = load_dir(dir.path()).unwrap().iter().map(|c| c.name().to_owned()).collect();
        assert_eq!(names, ["rainy-day-pass", "b-campaign"]);
    }

    #[test]
    fn the_same_campaign_name_in_two_files_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), CAMPAIGN).unwrap();
        std::fs::write(dir.path().join("b.yaml"), format!("{CHAT_CLUSTER}---\n{CAMPAIGN}")).unwrap();
        let error = load_dir(dir.path()).unwrap_err();
        let LoadError::Duplicate { first, second } = &error else { panic!("{error:?}") };
        assert_eq!(first.name.as_deref(), Some("rainy-day-pass"));
        assert_eq!((first.file.as_deref(), first.document), (Some(dir.path().join("a.yaml").as_path()), 1));
        assert_eq!((second.file.as_deref(), second.document), (Some(dir.path().join("b.yaml").as_path()), 2));
    }

    #[test]
    fn the_same_campaign_name_twice_in_one_stream_is_rejected() {
        let error = parse_yaml(&format!("{CAMPAIGN}---\n{CAMPAIGN}")).unwrap_err();
        assert!(matches!(error, LoadError::Duplicate { .. }), "{error:?}");
    }

    #[test]
    fn errors_in_a_file_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, CAMPAIGN.replace("dailyQuantity: 1000", "dailyQuantity: lots")).unwrap();
        let message = load_dir(dir.path()).unwrap_err().to_string();
        assert!(message.starts_with(&format!("{}: document 1 (`rainy-day-pass`): ", path.display())), "{message}");
    }

    #[test]
    fn a_missing_directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_dir(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, LoadError::Read { .. }), "{error:?}");
    }
}
