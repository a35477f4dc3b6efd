//! The workloads and the programs that run them: each workload on gc-core, on its no-GC
//! baseline (`Box`) and on its Go 1.19 twin where one exists; the Lox VM against `clox`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the programs are, built.
pub struct Setup {
    /// The repository.
    pub root: PathBuf,
    /// `target/release` (the lab's own directory): the Rust programs.
    release: PathBuf,
    /// The Go twins, built (`None`: no Go toolchain).
    go_bins: Option<PathBuf>,
    /// `go version`'s output.
    pub go_version: Option<String>,
    /// A reference clox.
    pub clox: Option<PathBuf>,
    /// A small Lox program for the quick run.
    quick_lox: PathBuf,
}

/// One implementation of a workload: its name and how to start it.
pub struct Impl {
    pub name: &'static str,
    pub command: Box<dyn Fn() -> Command>,
}

/// A workload and its implementations.
pub struct Workload {
    pub name: &'static str,
    pub impls: Vec<Impl>,
    /// The output lines that every implementation must print alike (the workload's answer, not
    /// its timings): the lab stops with an error where one differs from the first
    /// implementation's.
    pub answer: fn(&str) -> bool,
}

/// No line is compared (the program's output includes timings, or differs by design).
fn no_answer(_: &str) -> bool {
    false
}

/// Lox for the quick run: closures, instances, strings and a recursive call, a few million
/// allocations in well under a second.
const QUICK_LOX: &str = r#"
class Node { init(l, r) { this.l = l; this.r = r; } }
fun tree(d) { if (d == 0) return Node(nil, nil); return Node(tree(d - 1), tree(d - 1)); }
fun count(n) { if (n == nil) return 0; return 1 + count(n.l) + count(n.r); }
fun adder(k) { fun f(x) { return x + k; } return f; }
var total = 0;
for (var i = 0; i < 40; i = i + 1) {
  var add = adder(i);
  total = total + count(tree(10)) + add(1);
}
var s = "";
for (var i = 0; i < 200; i = i + 1) s = s + "x";
print total;
print s == s + "";
"#;

fn run(cmd: &str) -> Option<String> {
    let out = Command::new("sh").args(["-c", cmd]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Setup {
    /// Build the Rust programs (cargo) and the Go twins (`go`, when present), and find `clox`.
    pub fn prepare(
        root: &Path,
        go: &Path,
        clox: Option<&Path>,
        out: &Path,
    ) -> Result<Setup, String> {
        let release = std::env::current_exe()
            .map_err(|e| format!("the lab's own path: {e}"))?
            .parent()
            .expect("an executable is in a directory")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building the workload programs…");
        let ok = Command::new(&cargo)
            .current_dir(root)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "gc-examples",
                "--examples",
                "--bins",
                "-p",
                "lox",
                "-p",
                "gc-peers",
            ])
            .status()
            .map_err(|e| format!("{cargo}: {e}"))?
            .success();
        if !ok {
            return Err("building the examples failed".into());
        }
        let (go_bins, go_version) = if go.exists() {
            let dir = release.join("lab-go");
            for twin in ["binarytrees", "gcbench", "msgbuf", "treechurn"] {
                let ok = Command::new(go)
                    .current_dir(root.join("benches/go"))
                    .args(["build", "-o"])
                    .arg(dir.join(twin))
                    .arg(format!("./{twin}"))
                    .status()
                    .map_err(|e| format!("{}: {e}", go.display()))?
                    .success();
                if !ok {
                    return Err(format!("go build ./{twin} failed"));
                }
            }
            (Some(dir), run(&format!("{} version", go.display())))
        } else {
            eprintln!(
                "Go not found at {} (apt-get install golang-1.19-go, or --go PATH): no Go twins",
                go.display()
            );
            (None, None)
        };
        let clox = match clox {
            Some(p) if p.exists() => Some(p.to_path_buf()),
            Some(p) => return Err(format!("no clox at {}", p.display())),
            None => {
                // The Lox test data (as the Lox tests find it): `$LOX_TEST_DATA`, or the
                // test-data directory beside the repository.
                let data = std::env::var_os("LOX_TEST_DATA")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| root.join("../shared/lox"));
                let beside = data.join("bin/clox");
                beside.exists().then_some(beside)
            }
        };
        if clox.is_none() {
            eprintln!("no clox (--clox PATH): the Lox workloads run on the Lox VM alone");
        }
        let quick_lox = out.join("quick.lox");
        std::fs::write(&quick_lox, QUICK_LOX)
            .map_err(|e| format!("{}: {e}", quick_lox.display()))?;
        Ok(Setup {
            root: root.to_path_buf(),
            release,
            go_bins,
            go_version,
            clox,
            quick_lox,
        })
    }

    fn example(&self, name: &str) -> PathBuf {
        self.release.join("examples").join(name)
    }

    /// The `hiccups` example for `secs` seconds.
    pub fn hiccups(&self, secs: &str) -> Command {
        let mut c = Command::new(self.example("hiccups"));
        c.args(["--secs", secs]);
        c
    }
}

/// A command of `program` with `args`.
fn command(program: PathBuf, args: Vec<String>) -> Box<dyn Fn() -> Command> {
    Box::new(move || {
        let mut c = Command::new(&program);
        c.args(&args);
        c
    })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A workload on gc-core and `Box` (the same example with `--box`) and on its Go twin.
fn triple(s: &Setup, name: &'static str, example: &str, twin: &str, args: &[&str]) -> Workload {
    let mut impls = vec![
        Impl {
            name: "gc-core",
            command: command(s.example(example), strings(args)),
        },
        Impl {
            name: "box",
            command: command(s.example(example), strings(&[args, &["--box"]].concat())),
        },
    ];
    if let Some(go) = &s.go_bins {
        impls.push(Impl {
            name: "go",
            command: command(go.join(twin), strings(args)),
        });
    }
    Workload {
        name,
        impls,
        answer: no_answer,
    }
}

/// The Rust peers (the `gc-peers` program) for a workload they implement: `workload` is its
/// subcommand, `args` its arguments.
fn peers(s: &Setup, workload: &'static str, args: &[&str]) -> Vec<Impl> {
    PEERS
        .iter()
        .map(|&peer| Impl {
            name: peer,
            command: command(
                s.release.join("gc-peers"),
                strings(&[&[peer, workload], args].concat()),
            ),
        })
        .collect()
}

/// The Rust collectors `gc-peers` runs.
pub const PEERS: [&str; 4] = ["gc-arena", "dumpster", "rust-gc", "sandpit"];

/// The suite: full sizes, or small ones for `--quick`.
pub fn workloads(s: &Setup, quick: bool, with_peers: bool) -> Vec<Workload> {
    let pick = |full: &'static [&'static str], small: &'static [&'static str]| {
        if quick { small } else { full }
    };
    // Each workload's arguments, full and quick (gc-core's, `Box`'s, the Go twin's and the
    // peers' alike, but for GCBench's Go twin below).
    let binary_trees = pick(&["21"], &["12"]);
    let gcbench = pick(
        &[],
        &[
            "--stretch-depth",
            "14",
            "--long-lived-depth",
            "12",
            "--max-depth",
            "12",
            "--array",
            "20000",
        ],
    );
    let msgbuf = pick(
        &["--window", "200000", "--pushes", "10000000"],
        &["--window", "20000", "--pushes", "200000"],
    );
    let treechurn = pick(
        &["--live-mib", "256", "--ops", "20000"],
        &["--live-mib", "8", "--ops", "500"],
    );
    let mut suite = vec![
        triple(
            s,
            "binary-trees",
            "binary_trees",
            "binarytrees",
            binary_trees,
        ),
        triple(s, "gcbench", "gcbench", "gcbench", gcbench),
        triple(s, "msgbuf", "msgbuf", "msgbuf", msgbuf),
        triple(s, "treechurn", "treechurn", "treechurn", treechurn),
        triple(
            s,
            "treechurn-1g",
            "treechurn",
            "treechurn",
            pick(
                &["--live-mib", "1024", "--ops", "20000"],
                &["--live-mib", "16", "--ops", "300"],
            ),
        ),
    ];
    // The multi-mutator workload: 2, 4 and 8 mutator threads sharing one heap (treechurn's
    // live heap in all), handing trees to each other through the stash (`--share`).
    for (name, n) in [
        ("treechurn-x2", "2"),
        ("treechurn-x4", "4"),
        ("treechurn-x8", "8"),
    ] {
        let args = [treechurn, &["--mutators", n, "--share"]].concat();
        suite.push(triple(s, name, "treechurn", "treechurn", &args));
    }
    // binary-trees prints its answer (node counts) on every line but the figures; GCBench its
    // steps, between timings;
    suite[0].answer = |l| !l.contains('=');
    suite[1].answer = |l| l.starts_with("Stretching") || l.starts_with("Creating");
    // msgbuf the sum of the first bytes of the messages left in its window.
    suite[2].answer = |l| l.starts_with("window sum:");
    if with_peers {
        for (k, (workload, args)) in [
            ("binary-trees", binary_trees),
            ("gcbench", gcbench),
            ("msgbuf", msgbuf),
            ("treechurn", treechurn),
        ]
        .into_iter()
        .enumerate()
        {
            let mut p = peers(s, workload, args);
            // sandpit's single-threaded collector traces the whole 200 MB window at most scope
            // exits: 37 s for a tenth of msgbuf's pushes here, so the full run leaves it out
            // (the quick one keeps it).
            if workload == "msgbuf" && !quick {
                p.retain(|i| i.name != "sandpit");
            }
            suite[k].impls.extend(p);
        }
    }
    // The Go twin of GCBench names its flags as Go does.
    if let Some(go) = &s.go_bins
        && quick
    {
        let gcbench = suite.iter_mut().find(|w| w.name == "gcbench").unwrap();
        let twin = gcbench
            .impls
            .iter_mut()
            .find(|i| i.name == "go")
            .expect("triple() adds the twin where Go is present");
        *twin = Impl {
            name: "go",
            command: command(
                go.join("gcbench"),
                strings(&[
                    "-stretch",
                    "14",
                    "-long-lived",
                    "12",
                    "-max",
                    "12",
                    "-array",
                    "20000",
                ]),
            ),
        };
    }
    let lox_programs: Vec<PathBuf> = if quick {
        vec![s.quick_lox.clone()]
    } else {
        [
            "binary_trees",
            "fib",
            "string_build",
            "method_call",
            "closures",
        ]
        .iter()
        .map(|p| s.root.join(format!("examples/lox/bench/{p}.lox")))
        .collect()
    };
    for program in lox_programs {
        let name: &'static str = Box::leak(
            format!(
                "lox {}",
                program.file_stem().unwrap_or_default().to_string_lossy()
            )
            .into_boxed_str(),
        );
        let file = program.display().to_string();
        let mut impls = vec![Impl {
            name: "gc-core",
            command: command(
                s.release.join("lox"),
                vec!["--gc-stats".into(), file.clone()],
            ),
        }];
        if let Some(clox) = &s.clox {
            impls.push(Impl {
                name: "clox",
                command: command(clox.clone(), vec![file]),
            });
        }
        // The benchmark programs print only their results (no clock): every line compared.
        suite.push(Workload {
            name,
            impls,
            answer: |_| true,
        });
    }
    suite
}
