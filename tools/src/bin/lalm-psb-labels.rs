//! lalm-psb-labels: the whole Proactive-Sound-Bench at label level.
//!
//! Each of the benchmark's 644 items (`tests/data/psb-labels.tsv`, made from its manifest by
//! `scripts/psb-labels.py`) carries the AudioSet labels its description names: what a perfect
//! tagger would hear. The built-in rules then decide as they do in `lalm-decide`: RESPOND when
//! one of the labels belongs to a `respond` sound class (`src/decide/alerts/classes.rs`),
//! IGNORE otherwise (an `ignore` class only informs, and a sound no class names is not
//! reported). Scored beside the always-silent baseline and the paper's figures.
//!
//! This is a **label-level** score: no audio is heard, the tagger's own mistakes are left out,
//! and the descriptions' mapping to labels is ours. It says what the rules can decide at best
//! on the benchmark's kinds of sound, not what the loop does on its recordings (those are not
//! in a pinned package; `lalm-assist-eval` scores 77 items stood in for by real recordings).
//!
//! Usage: lalm-psb-labels [--items FILE] [--wrong]

use std::collections::BTreeMap;
use std::path::PathBuf;

use lalm_tools::cli::Flags;
use lalm_tools::{Res, exit};
use soundflow::decide::alerts::classes::CLASSES;
use soundflow::decide::alerts::types::SoundRole;

const USAGE: &str = "usage: lalm-psb-labels [--items FILE] [--wrong]\n  \
                     --items FILE  the items with their labels (default tests/data/psb-labels.tsv)\n  \
                     --wrong       list every item the rules decide wrongly";
const ITEMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/psb-labels.tsv");
const PAPER: (f64, f64) = lalm_tools::PSB_PAPER_ACCURACY;

struct Item {
    domain: String,
    category: String,
    description: String,
    respond: bool,
    labels: Vec<String>,
}

fn read_items(path: &std::path::Path) -> Res<Vec<Item>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.starts_with("id\t") || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [_, domain, category, description, decision, labels] = f[..] else {
            return Err(format!(
                "{}:{}: expected 6 tab-separated fields",
                path.display(),
                n + 1
            )
            .into());
        };
        let respond = match decision {
            "RESPOND" => true,
            "IGNORE" => false,
            d => return Err(format!("{}:{}: decision {d:?}", path.display(), n + 1).into()),
        };
        items.push(Item {
            domain: domain.into(),
            category: category.into(),
            description: description.into(),
            respond,
            labels: labels
                .split(';')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    if items.is_empty() {
        return Err(format!("{}: no items", path.display()).into());
    }
    Ok(items)
}

/// The respond class one of `labels` belongs to, as the built-in rules see it.
fn respond_class(labels: &[String]) -> Option<&'static str> {
    CLASSES
        .iter()
        .filter(|c| c.role == SoundRole::Respond)
        .find(|c| {
            labels
                .iter()
                .any(|l| c.labels.iter().any(|cl| cl.eq_ignore_ascii_case(l)))
        })
        .map(|c| c.name)
}

#[derive(Default)]
struct Tally {
    items: usize,
    right: usize,
    respond: usize,
    respond_right: usize,
    ignore: usize,
    ignore_right: usize,
}

impl Tally {
    fn add(&mut self, want: bool, got: bool) {
        self.items += 1;
        self.right += usize::from(want == got);
        if want {
            self.respond += 1;
            self.respond_right += usize::from(got);
        } else {
            self.ignore += 1;
            self.ignore_right += usize::from(!got);
        }
    }

    fn pct(a: usize, b: usize) -> String {
        if b == 0 {
            "–".into()
        } else {
            format!("{:.1} %", 100.0 * a as f64 / b as f64)
        }
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} ({}/{}) | {} ({}/{}) | {} |",
            self.items,
            Self::pct(self.right, self.items),
            Self::pct(self.respond_right, self.respond),
            self.respond_right,
            self.respond,
            Self::pct(self.ignore_right, self.ignore),
            self.ignore_right,
            self.ignore,
            Self::pct(self.ignore, self.items),
        )
    }
}

fn main_() -> Res<()> {
    let mut a = Flags::new(std::env::args().skip(1), USAGE);
    let mut path = PathBuf::from(ITEMS);
    let mut wrong = false;
    while let Some(flag) = a.next_flag() {
        match flag.as_str() {
            "--items" => path = a.value()?.into(),
            "--wrong" => wrong = true,
            _ => return Err(a.unknown()),
        }
    }
    if a.asked_for_help() {
        return Ok(());
    }
    let items = read_items(&path)?;
    let mut all = Tally::default();
    let mut by_category: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let unlabelled = items.iter().filter(|i| i.labels.is_empty()).count();
    let mut wrongs = Vec::new();
    for it in &items {
        let class = respond_class(&it.labels);
        let got = class.is_some();
        all.add(it.respond, got);
        by_category
            .entry((it.domain.clone(), it.category.clone()))
            .or_default()
            .add(it.respond, got);
        if got != it.respond {
            wrongs.push(format!(
                "  {} {:?} [{}]: rules {}",
                if it.respond { "RESPOND" } else { "IGNORE " },
                it.description,
                it.labels.join("; "),
                class.map_or("ignore".to_string(), |c| format!("respond ({c})"))
            ));
        }
    }
    println!(
        "Proactive-Sound-Bench at LABEL LEVEL (descriptions mapped to AudioSet labels, no audio): \
         {} items, {} with no label that names the sound; the built-in rules decide",
        items.len(),
        unlabelled
    );
    println!();
    println!(
        "| domain / category | items | rules: accuracy | RESPOND found | IGNORE kept silent | always silent |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for ((d, c), t) in &by_category {
        println!("{}", t.row(&format!("{d} / {c}")));
    }
    println!("{}", all.row("**all**"));
    println!();
    println!(
        "the paper's model on the audio: {:.1} % (single-turn), {:.1} % (multi-turn); \
         always silent: {}",
        PAPER.0,
        PAPER.1,
        Tally::pct(all.ignore, all.items)
    );
    if wrong {
        println!("\nwrong decisions:");
        for w in &wrongs {
            println!("{w}");
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit("lalm-psb-labels", main_())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_manifest_is_there_and_decided_as_the_rules_do() {
        let items = read_items(std::path::Path::new(ITEMS)).expect("items");
        assert_eq!(items.len(), 644);
        assert_eq!(items.iter().filter(|i| !i.respond).count(), 377);
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            respond_class(&l(&["Smoke detector, smoke alarm"])),
            Some("smoke-alarm")
        );
        assert_eq!(respond_class(&l(&["siren"])), Some("siren"));
        // An everyday class informs only; a label no class names is not reported.
        assert_eq!(respond_class(&l(&["Music", "Clock"])), None);
        assert_eq!(respond_class(&[]), None);
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("lalm-psb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("items.tsv");
        std::fs::write(
            &f,
            "# c\nid\tdomain\tcategory\tdescription\tdecision\tlabels\nx\td\tc\tdoor\tMAYBE\t\n",
        )
        .expect("write");
        let e = read_items(&f).err().expect("an error").to_string();
        assert!(e.contains("items.tsv:3") && e.contains("MAYBE"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
