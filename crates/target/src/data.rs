//! The data files of `crates/target/data/`, parsed once. Each file starts with comment
//! lines saying where its facts come from; rows are tab-separated.

use crate::Version;
use std::sync::OnceLock;

/// A row of `helpers.tsv` or `xdp_helpers.tsv`.
#[derive(Clone, Debug)]
pub struct HelperRow {
    pub id: u32,
    /// With the `bpf_` prefix.
    pub name: String,
    pub since: Version,
    /// `intro`, `commit` or `derived` (`xdp_helpers.tsv`); empty in `helpers.tsv`.
    pub basis: String,
    pub note: String,
}

/// A row of `map_types.tsv` or `prog_types.tsv`.
#[derive(Clone, Debug)]
pub struct TypeRow {
    pub id: u32,
    pub name: String,
    pub since: Version,
}

/// A row of `kfuncs.tsv`.
#[derive(Clone, Debug)]
pub struct KfuncRow {
    pub name: String,
    pub since: Version,
    pub basis: String,
}

/// A row of `features.tsv`.
#[derive(Clone, Debug)]
pub struct FeatureRow {
    pub name: String,
    pub since: Version,
    pub before: Option<u64>,
    pub from: Option<u64>,
}

fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

fn version(file: &str, s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|| panic!("{file}: bad release `{s}`"))
}

fn num<T: std::str::FromStr>(file: &str, s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("{file}: bad number `{s}`"))
}

fn helper_rows(file: &str, text: &'static str) -> Vec<HelperRow> {
    rows(text)
        .map(|c| HelperRow {
            id: num(file, c[0]),
            name: c[1].to_string(),
            since: version(file, c[2]),
            basis: c.get(3).unwrap_or(&"").to_string(),
            note: c.get(4).unwrap_or(&"").to_string(),
        })
        .collect()
}

fn type_rows(file: &str, text: &'static str) -> Vec<TypeRow> {
    rows(text)
        .map(|c| TypeRow {
            id: num(file, c[0]),
            name: c[1].to_string(),
            since: version(file, c[2]),
        })
        .collect()
}

pub(crate) fn helpers() -> &'static [HelperRow] {
    static D: OnceLock<Vec<HelperRow>> = OnceLock::new();
    D.get_or_init(|| helper_rows("helpers.tsv", include_str!("../data/helpers.tsv")))
}

pub(crate) fn xdp_helpers() -> &'static [HelperRow] {
    static D: OnceLock<Vec<HelperRow>> = OnceLock::new();
    D.get_or_init(|| helper_rows("xdp_helpers.tsv", include_str!("../data/xdp_helpers.tsv")))
}

pub(crate) fn map_types() -> &'static [TypeRow] {
    static D: OnceLock<Vec<TypeRow>> = OnceLock::new();
    D.get_or_init(|| type_rows("map_types.tsv", include_str!("../data/map_types.tsv")))
}

pub(crate) fn attach_types() -> &'static [TypeRow] {
    static D: OnceLock<Vec<TypeRow>> = OnceLock::new();
    D.get_or_init(|| type_rows("attach_types.tsv", include_str!("../data/attach_types.tsv")))
}

pub(crate) fn prog_types() -> &'static [TypeRow] {
    static D: OnceLock<Vec<TypeRow>> = OnceLock::new();
    D.get_or_init(|| type_rows("prog_types.tsv", include_str!("../data/prog_types.tsv")))
}

pub(crate) fn kfuncs() -> &'static [KfuncRow] {
    static D: OnceLock<Vec<KfuncRow>> = OnceLock::new();
    D.get_or_init(|| {
        rows(include_str!("../data/kfuncs.tsv"))
            .map(|c| KfuncRow {
                name: c[0].to_string(),
                since: version("kfuncs.tsv", c[1]),
                basis: c.get(2).unwrap_or(&"").to_string(),
            })
            .collect()
    })
}

pub(crate) fn feature(name: &str) -> Option<&'static FeatureRow> {
    static D: OnceLock<Vec<FeatureRow>> = OnceLock::new();
    let file = "features.tsv";
    D.get_or_init(|| {
        rows(include_str!("../data/features.tsv"))
            .map(|c| {
                let opt = |s: &str| (s != "-").then(|| s.parse().ok()).flatten();
                FeatureRow {
                    name: c[0].to_string(),
                    since: version(file, c[1]),
                    before: opt(c.get(2).unwrap_or(&"-")),
                    from: opt(c.get(3).unwrap_or(&"-")),
                }
            })
            .collect()
    })
    .iter()
    .find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every data file parses, helper ids match the isa crate's names, and each XDP
    /// helper's release is not before the helper existed.
    #[test]
    fn data_files_are_consistent() {
        for h in helpers() {
            assert_eq!(
                Some(h.name.trim_start_matches("bpf_")),
                bpfkit_isa::helper::name(h.id as i32),
                "helpers.tsv id {}",
                h.id
            );
        }
        assert_eq!(helpers().len(), bpfkit_isa::helper::NAMES.len() - 1);
        for x in xdp_helpers() {
            let intro = helpers().iter().find(|h| h.id == x.id).unwrap();
            assert_eq!(intro.name, x.name);
            assert!(x.since >= intro.since, "{} before its introduction", x.name);
            assert!(["intro", "commit", "derived"].contains(&x.basis.as_str()));
        }
        assert!(!map_types().is_empty() && !prog_types().is_empty() && !kfuncs().is_empty());
        assert!(feature("bounded_loops").is_some());
        assert!(feature("helper_refusal_wording").is_some());
    }
}
