//! Byte-for-byte comparison of `canonicalize` with real Python.
//!
//! Generates ~500 random payloads (nested objects, raw and escaped unicode,
//! lone surrogates, floats of every magnitude, big ints) plus mutated,
//! mostly invalid copies, runs all of them through
//! `json.dumps(json.loads(body), sort_keys=True, separators=(',', ':'))` in
//! one `python3` process, and compares. Skipped (and says so) when `python3`
//! is not on PATH. The seed is fixed; set `POOLDESK_PYCOMPAT_SEED` to explore.

#[path = "../../../tests/src/skip.rs"]
mod skip;

use std::io::Write;
use std::process::{Command, Stdio};

use pooldesk_proto::canonical::{CanonicalError, canonicalize};

const PAYLOADS: usize = 500;

/// Reads NUL-separated bodies as bytes (as a server would), answers
/// NUL-separated canonical texts or `!ERR <exception>`.
const PYTHON_SCRIPT: &str = r#"
import json, sys
out = []
for body in sys.stdin.buffer.read().split(b'\x00'):
    try:
        out.append(json.dumps(json.loads(body), sort_keys=True, separators=(',', ':')).encode('ascii'))
    except Exception as e:
        out.append(b'!ERR ' + type(e).__name__.encode())
sys.stdout.buffer.write(b'\x00'.join(out))
"#;

/// SplitMix64: small, deterministic, good enough to pick test shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn digits(&mut self, count: u64, first_nonzero: bool) -> String {
        (0..count)
            .map(|i| {
                let low = u64::from(i == 0 && first_nonzero);
                char::from(b'0' + (low + self.below(10 - low)) as u8)
            })
            .collect()
    }
}

const SPECIAL_FLOATS: &[&str] = &[
    "1.0",
    "1e16",
    "1e15",
    "0.0001",
    "0.00001",
    "1e-7",
    "12.5",
    "1763800000.123456",
    "-0.0",
    "1.5e300",
    "123456789012345678.0",
    "1E400",
    "-1e400",
    "1e22",
    "5e-324",
    "4.9e-324",
    "2.2250738585072014e-308",
    "2.225073858507201e-308",
    "1.7976931348623157e308",
    "9007199254740993.0",
    "0.30000000000000004",
    "0.1",
    "1e-5",
    "1e-4",
    "9999999999999998.0",
    "99999999999999999.0",
    "1e-400",
    "0.000123456789e-3",
    "2.5e-05",
    "100.0",
    "1e0",
    "0E0",
    "7.0e+0",
    "1.0000000000000002",
    "0.1e1",
    "123e-2",
    "1e23",
    "8.98846567431158e307",
];

struct Gen {
    rng: Rng,
    /// Whether whitespace is sprinkled between tokens in this payload.
    spaced: bool,
}

impl Gen {
    fn ws(&mut self, out: &mut String) {
        if self.spaced && self.rng.chance(40) {
            out.push_str(self.rng.pick(&[" ", "  ", "\n", "\t", "\r\n ", " \n\t "]));
        }
    }

    fn value(&mut self, out: &mut String, depth: u32) {
        let kinds = if depth >= 4 { 10 } else { 14 };
        match self.rng.below(kinds) {
            0 => out.push_str(self.rng.pick(&["null", "true", "false"])),
            1 | 2 => self.int(out),
            3..=5 => self.float(out),
            6 if self.rng.chance(15) => {
                out.push_str(self.rng.pick(&["NaN", "Infinity", "-Infinity"]));
            }
            6..=9 => {
                self.string(out);
            }
            10 | 11 => self.array(out, depth + 1),
            _ => self.object(out, depth + 1),
        }
    }

    fn int(&mut self, out: &mut String) {
        match self.rng.below(5) {
            0 => out.push_str(&(self.rng.next() as i64).to_string()),
            1 => out.push_str(&(self.rng.below(1000) as i64 - 500).to_string()),
            2 => out.push_str(self.rng.pick(&["0", "-0", "1763800000", "65536"])),
            _ => {
                if self.rng.chance(50) {
                    out.push('-');
                }
                let count = 1 + self.rng.below(60);
                out.push_str(&self.rng.digits(count, true));
            }
        }
    }

    fn float(&mut self, out: &mut String) {
        match self.rng.below(6) {
            0 => out.push_str(self.rng.pick(SPECIAL_FLOATS)),
            5 => {
                // Few binary fraction digits: exact halfway cases for the
                // shortest digits, where Python rounds to even.
                let mantissa = self.rng.below(1 << 53) as f64;
                let x = mantissa / f64::from(1u32 << (1 + self.rng.below(10)));
                out.push_str(&format!("{x:?}"));
            }
            1 | 2 => {
                let x = f64::from_bits(self.rng.next());
                let x = if x.is_finite() { x } else { 1.5 };
                out.push_str(&if self.rng.chance(50) {
                    format!("{x:e}")
                } else {
                    format!("{x:?}")
                });
            }
            _ => self.decimal_float(out),
        }
    }

    /// A decimal literal with up to 25 significant digits and any exponent:
    /// exercises correct rounding and the repr layout thresholds.
    fn decimal_float(&mut self, out: &mut String) {
        if self.rng.chance(30) {
            out.push('-');
        }
        let int_len = 1 + self.rng.below(20);
        if self.rng.chance(30) {
            out.push('0');
        } else {
            out.push_str(&self.rng.digits(int_len, true));
        }
        let has_fraction = self.rng.chance(70);
        if has_fraction {
            out.push('.');
            let frac_len = 1 + self.rng.below(25);
            out.push_str(&self.rng.digits(frac_len, false));
        }
        if !has_fraction || self.rng.chance(60) {
            out.push_str(self.rng.pick(&["e", "E", "e+", "e-", "E-", "E+"]));
            let bound = if self.rng.chance(70) { 25 } else { 340 };
            let exponent = self.rng.below(bound);
            out.push_str(&exponent.to_string());
        }
    }

    /// Writes a string literal; returns its decoded code points (what
    /// Python compares keys by).
    fn string(&mut self, out: &mut String) -> Vec<u32> {
        let mut decoded = Vec::new();
        out.push('"');
        for _ in 0..self.rng.below(10) {
            self.string_piece(out, &mut decoded);
        }
        out.push('"');
        decoded
    }

    fn string_piece(&mut self, out: &mut String, decoded: &mut Vec<u32>) {
        let c: char = match self.rng.below(12) {
            0..=4 => char::from(0x20 + self.rng.below(0x5f) as u8),
            5 => char::from(self.rng.below(0x20) as u8),
            6 => '\u{7f}',
            7 => self
                .rng
                .pick(&['"', '\\', '/', '\u{8}', '\u{c}', '\n', '\r', '\t']),
            8 => char::from_u32(0x80 + self.rng.below(0x180) as u32).unwrap_or('é'),
            9 => char::from_u32(0x800 + self.rng.below(0xd000) as u32).unwrap_or('€'),
            10 => char::from_u32(0x10000 + self.rng.below(0x100000) as u32).unwrap_or('😀'),
            _ => {
                // Lone surrogate, followed by a plain letter so that it can
                // never pair up with a neighbour by chance.
                let unit = 0xd800 + self.rng.below(0x800);
                out.push_str(&format!("\\u{unit:04x}x"));
                decoded.extend([unit as u32, u32::from('x')]);
                return;
            }
        };
        decoded.push(u32::from(c));
        self.write_char(out, c);
    }

    fn write_char(&mut self, out: &mut String, c: char) {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '/' if self.rng.chance(50) => Some("\\/"),
            _ => None,
        };
        if let Some(escape) = short.filter(|_| self.rng.chance(80)) {
            out.push_str(escape);
        } else if c < ' ' || c == '"' || c == '\\' || self.rng.chance(40) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                if self.rng.chance(50) {
                    out.push_str(&format!("\\u{unit:04x}"));
                } else {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        } else {
            out.push(c);
        }
    }

    fn array(&mut self, out: &mut String, depth: u32) {
        out.push('[');
        self.ws(out);
        for i in 0..self.rng.below(6) {
            if i > 0 {
                out.push(',');
                self.ws(out);
            }
            self.value(out, depth);
            self.ws(out);
        }
        out.push(']');
    }

    fn object(&mut self, out: &mut String, depth: u32) {
        out.push('{');
        self.ws(out);
        let mut keys: Vec<Vec<u32>> = Vec::new();
        for _ in 0..self.rng.below(7) {
            let mut member = String::new();
            let key = if self.rng.chance(50) {
                let plain =
                    self.rng
                        .pick(&["a", "b", "B", "ts", "miner_id", "work_score", "é", "Z"]);
                member.push_str(&format!("\"{plain}\""));
                plain.chars().map(u32::from).collect()
            } else {
                self.string(&mut member)
            };
            // Python would silently keep the last duplicate; we refuse, so
            // valid payloads carry unique keys only.
            if keys.contains(&key) {
                continue;
            }
            keys.push(key);
            if keys.len() > 1 {
                out.push(',');
                self.ws(out);
            }
            out.push_str(&member);
            self.ws(out);
            out.push(':');
            self.ws(out);
            self.value(out, depth);
            self.ws(out);
        }
        out.push('}');
    }

    /// A COINjecture-shaped block payload with random extras.
    fn block_payload(&mut self, out: &mut String) {
        out.push('{');
        let fixed = [
            "\"event_id\": \"ev\"",
            "\"block_index\": 7",
            "\"block_hash\": \"00000000000000000002a7c4\"",
            "\"miner_id\": \"m\\u00fcller\"",
            "\"capacity\": \"TIER_2_DESKTOP\"",
        ];
        for member in fixed {
            out.push_str(member);
            out.push_str(", ");
        }
        out.push_str("\"work_score\": ");
        self.float(out);
        out.push_str(", \"ts\": ");
        self.float(out);
        out.push_str(", \"extra\": ");
        self.object(out, 1);
        out.push('}');
    }

    fn payload(&mut self) -> String {
        self.spaced = self.rng.chance(50);
        let mut out = String::new();
        self.ws(&mut out);
        match self.rng.below(10) {
            0..=3 => self.block_payload(&mut out),
            4..=7 => self.object(&mut out, 1),
            8 => self.array(&mut out, 1),
            _ => self.value(&mut out, 1),
        }
        self.ws(&mut out);
        out
    }

    /// A copy with one small edit; most are invalid, some stay valid.
    fn mutate(&mut self, body: &str) -> Vec<u8> {
        let mut bytes = body.as_bytes().to_vec();
        let at = self.rng.below(bytes.len() as u64 + 1) as usize;
        if self.rng.chance(30) && at < bytes.len() {
            bytes.remove(at);
        } else {
            let tokens: [&[u8]; 16] = [
                b",",
                b"]",
                b"}",
                b"0",
                b"\"",
                b"\\",
                b":",
                b" ",
                b"e",
                b".",
                b"-",
                b"\x01",
                b"\x7f",
                b"01",
                b"\xff",
                b"{\"a\":1}",
            ];
            let token = self.rng.pick(&tokens);
            bytes.splice(at..at, token.iter().copied());
        }
        bytes
    }
}

fn run_python(bodies: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let spawned = Command::new("python3")
        .args(["-I", "-c", PYTHON_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("could not start python3: {e}"),
    };
    let input = bodies.join(&b'\0');
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Write from a thread so a full stdout pipe can never deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("python3 runs");
    writer
        .join()
        .expect("writer thread")
        .expect("write to python3");
    assert!(
        output.status.success(),
        "python3 failed: {:?}",
        output.status
    );
    Some(
        output
            .stdout
            .split(|&b| b == 0)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

#[test]
fn canonicalize_matches_python_byte_for_byte() {
    let seed = std::env::var("POOLDESK_PYCOMPAT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001_u64);
    let mut generator = Gen {
        rng: Rng(seed),
        spaced: false,
    };
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut mutated: Vec<bool> = Vec::new();
    for _ in 0..PAYLOADS {
        let body = generator.payload();
        if generator.rng.chance(20) {
            bodies.push(generator.mutate(&body));
            mutated.push(true);
        }
        bodies.push(body.into_bytes());
        mutated.push(false);
    }
    // The integer length limit Python 3.11+ enforces, on both sides of it.
    bodies.push(format!("[{}]", "7".repeat(4300)).into_bytes());
    bodies.push(format!("[-{}]", "7".repeat(4301)).into_bytes());
    mutated.extend([false, true]);

    let Some(python) = run_python(&bodies) else {
        skip::skip_or_fail("python_compat", "python3 is not installed");
        return;
    };
    assert_eq!(python.len(), bodies.len(), "one answer per body");

    let mut failures = Vec::new();
    let mut compared_ok = 0;
    for (i, (body, expected)) in bodies.iter().zip(&python).enumerate() {
        let ours = canonicalize(body);
        let python_refused = expected.starts_with(b"!ERR");
        let agree = match &ours {
            Ok(text) => !python_refused && text.as_bytes() == expected.as_slice(),
            // Python keeps the last duplicate; we refuse on purpose.
            Err(CanonicalError::DuplicateKey { .. }) => mutated[i],
            Err(_) => python_refused,
        };
        if ours.is_ok() {
            compared_ok += 1;
        }
        if !agree {
            failures.push(format!(
                "#{i} seed {seed:#x}\n  body:   {}\n  python: {}\n  ours:   {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(expected),
                ours
            ));
        }
    }
    println!(
        "compared {} bodies with python3, {compared_ok} canonical",
        bodies.len()
    );
    assert!(compared_ok >= PAYLOADS, "most bodies must be valid");
    assert!(
        failures.is_empty(),
        "{} mismatches with Python:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
