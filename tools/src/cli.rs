//! Command-line flags the way the benchmarks take them: `--name value` or `--name=value`.

use crate::Res;

/// Walks the arguments; after [`Flags::next_flag`] gives a flag's name, [`Flags::value`] or
/// [`Flags::positive`] takes its value.
pub struct Flags<I> {
    args: I,
    usage: &'static str,
    name: String,
    inline: Option<String>,
    help: bool,
}

impl<I: Iterator<Item = String>> Flags<I> {
    /// `args` without the program name; `usage` is appended to every error.
    pub fn new(args: I, usage: &'static str) -> Self {
        Flags {
            args,
            usage,
            name: String::new(),
            inline: None,
            help: false,
        }
    }

    /// The next flag's name (`--minutes` of `--minutes=3` too), or None after the last one.
    /// `-h` or `--help` prints the usage and ends the walk (see [`Flags::asked_for_help`]).
    pub fn next_flag(&mut self) -> Option<String> {
        let arg = self.args.next()?;
        if arg == "-h" || arg == "--help" {
            println!("{}", self.usage);
            self.help = true;
            return None;
        }
        (self.name, self.inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        Some(self.name.clone())
    }

    /// The current flag's value: after `=`, or the next argument.
    pub fn value(&mut self) -> Res<String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{} needs a value\n{}", self.name, self.usage).into())
    }

    /// The current flag's value as a positive integer.
    pub fn positive(&mut self) -> Res<u32> {
        let v = self.value()?;
        v.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{}: expected a positive integer, got {v:?}", self.name).into())
    }

    /// Whether the walk ended at `-h` or `--help`: the program then does nothing more.
    pub fn asked_for_help(&self) -> bool {
        self.help
    }

    /// The error for a flag the program does not know.
    pub fn unknown(&self) -> Box<dyn std::error::Error> {
        format!("unknown argument {:?}\n{}", self.name, self.usage).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags<std::vec::IntoIter<String>> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Flags::new(v.into_iter(), "usage: x")
    }

    #[test]
    fn both_spellings_give_the_value() {
        let mut f = flags(&["--minutes=3", "--threads", "2", "--input", "a=b.wav"]);
        assert_eq!(f.next_flag().as_deref(), Some("--minutes"));
        assert_eq!(f.positive().expect("3"), 3);
        assert_eq!(f.next_flag().as_deref(), Some("--threads"));
        assert_eq!(f.positive().expect("2"), 2);
        assert_eq!(f.next_flag().as_deref(), Some("--input"));
        assert_eq!(f.value().expect("path"), "a=b.wav");
        assert_eq!(f.next_flag(), None);
    }

    #[test]
    fn bad_values_are_errors() {
        let mut f = flags(&["--minutes", "0", "--threads"]);
        f.next_flag();
        assert!(f.positive().is_err());
        f.next_flag();
        let err = f.value().expect_err("no value");
        assert!(err.to_string().contains("--threads needs a value"), "{err}");
        assert!(f.unknown().to_string().contains("usage: x"));
    }

    #[test]
    fn help_ends_the_walk() {
        let mut f = flags(&["--minutes", "3", "--help", "--bogus"]);
        assert_eq!(f.next_flag().as_deref(), Some("--minutes"));
        assert!(!f.asked_for_help());
        f.value().expect("3");
        assert_eq!(f.next_flag(), None);
        assert!(f.asked_for_help());
    }
}
