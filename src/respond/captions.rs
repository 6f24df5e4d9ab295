//! Sound captions: the bracketed lines broadcast captions give sounds that matter to the
//! story ("[APPLAUSE]", "[PHONE RINGING]"), from the sound rules' classes.

/// The caption of a sound a rule heard. A built-in class has its conventional wording; a
/// rules file's own rule is captioned with the first name of the tagger label that fired
/// ("Church bell" → "[CHURCH BELL]").
pub fn sound_caption(rule: &str, label: &str) -> String {
    let words = match rule {
        "smoke-alarm" => "ALARM SOUNDING",
        "siren" => "SIREN",
        "car-alarm" => "CAR ALARM",
        "glass" => "GLASS SHATTERING",
        "phone" => "PHONE RINGING",
        "doorbell" => "DOORBELL",
        "knock" => "KNOCKING",
        "scream" => "SCREAMING",
        "shout" => "SHOUTING",
        "baby-cry" => "BABY CRYING",
        "cough" => "COUGHING",
        "dog" => "DOG BARKING",
        "explosion" => "EXPLOSION",
        "gunshot" => "GUNSHOTS",
        "fall" => "THUD",
        "crash" => "CRASH",
        "music" => "MUSIC",
        "applause" => "APPLAUSE",
        "laughter" => "LAUGHTER",
        "footsteps" => "FOOTSTEPS",
        "typing" => "TYPING",
        "traffic" => "TRAFFIC",
        "birds" => "BIRDS CHIRPING",
        "water" => "WATER RUNNING",
        "door" => "DOOR",
        _ => {
            let name = label.split(',').next().unwrap_or("").trim();
            let name = if name.is_empty() { rule } else { name };
            return format!("[{}]", name.to_uppercase());
        }
    };
    format!("[{words}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::alerts::classes::CLASSES;

    #[test]
    fn every_builtin_class_has_its_own_wording() {
        let mut seen = std::collections::HashSet::new();
        for c in CLASSES {
            // A label that is not a class name would be the fallback's wording.
            let caption = sound_caption(c.name, "Not a class label");
            assert_ne!(caption, "[NOT A CLASS LABEL]", "{} has no wording", c.name);
            assert!(seen.insert(caption.clone()), "{caption} twice");
        }
    }

    #[test]
    fn a_rule_of_a_rules_file_is_captioned_by_its_label() {
        assert_eq!(sound_caption("bells", "Church bell"), "[CHURCH BELL]");
        assert_eq!(
            sound_caption("kitchen", "Smoke detector, smoke alarm"),
            "[SMOKE DETECTOR]"
        );
        assert_eq!(sound_caption("odd", ""), "[ODD]");
    }
}
