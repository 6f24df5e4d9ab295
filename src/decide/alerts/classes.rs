//! The built-in sound classes: named groups of AudioSet labels, each with the thresholds
//! and role its rule gets. They cover the Proactive-Sound-Bench kinds of sound an assistant
//! should speak up on (`respond`) and the everyday sounds it should stay quiet on
//! (`ignore`), over the labels of an AudioSet tagger such as CED.
//!
//! A class's score in a tagger window is the best score of its labels. A rules file names
//! a class by its name (`label = "glass"`) to get its labels and its tuned values, any of
//! which the rule may override.
//!
//! Thresholds, durations and releases were chosen on the calibration half of the real
//! recordings listed in `tests/data/real-sounds.tsv` (see the README's sound-alert figures);
//! they assume the default tagger's windows (ced-tiny: 2 s windows every 0.5 s).

use super::types::SoundRole;

#[derive(Debug, Clone, Copy)]
pub struct SoundClass {
    pub name: &'static str,
    pub role: SoundRole,
    /// Tagger labels, as the AudioSet ontology names them. A tagger needs only one of them.
    pub labels: &'static [&'static str],
    pub threshold: f32,
    pub min_duration_ms: u32,
    pub release_ms: u32,
    pub cooldown_ms: u32,
}

const fn respond(
    name: &'static str,
    labels: &'static [&'static str],
    threshold: f32,
    min_duration_ms: u32,
) -> SoundClass {
    SoundClass {
        name,
        role: SoundRole::Respond,
        labels,
        threshold,
        min_duration_ms,
        release_ms: 2000,
        cooldown_ms: 10_000,
    }
}

const fn ignore(name: &'static str, labels: &'static [&'static str]) -> SoundClass {
    SoundClass {
        name,
        role: SoundRole::Ignore,
        labels,
        threshold: 0.4,
        min_duration_ms: 1000,
        release_ms: 3000,
        cooldown_ms: 30_000,
    }
}

/// Every built-in class, in the order the built-in rules list them.
pub const CLASSES: &[SoundClass] = &[
    respond(
        "smoke-alarm",
        &[
            "Smoke detector, smoke alarm",
            "Fire alarm",
            "Alarm",
            "Alarm clock",
            "Buzzer",
        ],
        0.3,
        1000,
    ),
    respond(
        "siren",
        &[
            "Siren",
            "Civil defense siren",
            "Police car (siren)",
            "Ambulance (siren)",
            "Fire engine, fire truck (siren)",
        ],
        0.3,
        1000,
    ),
    respond("car-alarm", &["Car alarm"], 0.3, 1000),
    respond("glass", &["Glass", "Shatter", "Breaking"], 0.3, 1000),
    respond(
        "phone",
        // `phone` is the project's own tagger's label for the same sounds.
        &["Telephone bell ringing", "Ringtone", "Telephone", "phone"],
        0.4,
        1000,
    ),
    respond("doorbell", &["Doorbell", "Ding-dong"], 0.3, 1000),
    respond("knock", &["Knock"], 0.3, 1000),
    respond("scream", &["Screaming"], 0.15, 1000),
    respond(
        "shout",
        &["Shout", "Yell", "Bellow", "Battle cry", "Children shouting"],
        0.3,
        1000,
    ),
    respond(
        "baby-cry",
        &["Baby cry, infant cry", "Crying, sobbing"],
        0.3,
        1000,
    ),
    respond("cough", &["Cough"], 0.3, 1000),
    respond(
        "dog",
        &["Dog", "Bark", "Howl", "Growling", "Bow-wow", "Yip"],
        0.2,
        1000,
    ),
    respond("explosion", &["Explosion", "Boom"], 0.4, 1000),
    respond(
        "gunshot",
        &[
            "Gunshot, gunfire",
            "Machine gun",
            "Fusillade",
            "Artillery fire",
            "Cap gun",
        ],
        0.25,
        1000,
    ),
    respond("fall", &["Thump, thud"], 0.3, 1000),
    respond("crash", &["Smash, crash"], 0.3, 1000),
    ignore("music", &["Music"]),
    ignore("applause", &["Applause", "Clapping", "Cheering"]),
    ignore(
        "laughter",
        &["Laughter", "Giggle", "Chuckle, chortle", "Belly laugh"],
    ),
    ignore("footsteps", &["Walk, footsteps", "Run"]),
    ignore("typing", &["Typing", "Computer keyboard", "Typewriter"]),
    ignore(
        "traffic",
        &[
            "Traffic noise, roadway noise",
            "Car passing by",
            "Motor vehicle (road)",
        ],
    ),
    ignore(
        "birds",
        &["Bird vocalization, bird call, bird song", "Chirp, tweet"],
    ),
    ignore("water", &["Water tap, faucet", "Rain", "Stream"]),
    ignore(
        "door",
        &["Door", "Slam", "Sliding door", "Cupboard open or close"],
    ),
];

/// The built-in class named `name`, ignoring ASCII case.
pub fn class(name: &str) -> Option<&'static SoundClass> {
    CLASSES.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Proactive-Sound-Bench kinds each have a respond class.
    #[test]
    fn respond_kinds_are_covered() {
        for kind in [
            "smoke-alarm",
            "siren",
            "glass",
            "phone",
            "scream",
            "baby-cry",
            "cough",
            "knock",
            "doorbell",
            "dog",
            "explosion",
            "gunshot",
            "car-alarm",
            "fall",
        ] {
            let c = class(kind).unwrap_or_else(|| panic!("no class {kind}"));
            assert_eq!(c.role, SoundRole::Respond, "{kind}");
        }
        for c in CLASSES {
            assert!(!c.labels.is_empty(), "{}", c.name);
            assert!(c.threshold > 0.0 && c.threshold <= 1.0, "{}", c.name);
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, c) in CLASSES.iter().enumerate() {
            assert!(
                CLASSES[..i]
                    .iter()
                    .all(|d| !d.name.eq_ignore_ascii_case(c.name)),
                "{} twice",
                c.name
            );
        }
    }
}
