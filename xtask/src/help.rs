//! `--help` for every task: one table says what each task does, its options and an example,
//! and both the help texts and the usage line of an error are written from it.

/// One option of a task.
pub struct Opt {
    /// `--seconds N`, with the value's name when it takes one.
    pub flag: &'static str,
    pub help: &'static str,
}

/// One task, by the words that name it (`bench proxy`).
pub struct Task {
    pub name: &'static str,
    /// One line for `cargo xtask --help`'s list.
    pub summary: &'static str,
    pub about: &'static str,
    /// Positional arguments, as the usage line writes them (`<id>`).
    pub args: &'static str,
    pub options: &'static [Opt],
    pub examples: &'static [&'static str],
}

impl Task {
    /// `cargo xtask <name> <args> [options]`.
    pub fn usage(&self) -> String {
        let mut usage = format!("cargo xtask {}", self.name);
        if !self.args.is_empty() {
            usage.push(' ');
            usage.push_str(self.args);
        }
        if !self.options.is_empty() {
            usage.push_str(" [options]");
        }
        usage
    }

    /// The full help: what it does, usage, options and examples.
    pub fn help(&self) -> String {
        let mut out = format!("{}\n\nUsage: {}\n", self.about, self.usage());
        if !self.options.is_empty() {
            out.push_str("\nOptions:\n");
            let width = self.options.iter().map(|o| o.flag.len()).max().unwrap_or(0);
            for option in self.options {
                let mut lines = option.help.lines();
                let first = lines.next().unwrap_or_default();
                out.push_str(&format!("  {:width$}  {first}\n", option.flag));
                for line in lines {
                    out.push_str(&format!("  {:width$}  {line}\n", ""));
                }
            }
        }
        out.push_str("\nExamples:\n");
        for example in self.examples {
            out.push_str(&format!("  {example}\n"));
        }
        out
    }
}

/// What `cargo xtask --help` (or an unknown task) prints: every task with its summary.
pub fn overview(tasks: &[Task]) -> String {
    let mut out = String::from(
        "Project chores of the Plugboard workspace.\n\nUsage: cargo xtask <task> [options]\n\nTasks:\n",
    );
    let width = tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for task in tasks {
        out.push_str(&format!("  {:width$}  {}\n", task.name, task.summary));
    }
    out.push_str("\n`cargo xtask <task> --help` explains a task's options, with an example.\n");
    out
}

/// The task named by the leading words of `args`, longest name first.
pub fn find<'t>(tasks: &'t [Task], args: &[&str]) -> Option<&'t Task> {
    tasks
        .iter()
        .filter(|task| {
            let words: Vec<&str> = task.name.split(' ').collect();
            args.len() >= words.len() && args[..words.len()] == words[..]
        })
        .max_by_key(|task| task.name.len())
}

/// Whether the arguments ask for help: `--help` or `-h` anywhere.
pub fn wants_help(args: &[&str]) -> bool {
    args.iter().any(|a| matches!(*a, "--help" | "-h"))
}
