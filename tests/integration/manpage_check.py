#!/usr/bin/env python3
"""Checks that the manual pages say what the programs do (manpages_test.sh runs it).

  manpage_check.py BIN_DIR MAN_DIR AGENT_TOML

- every flag that `PROGRAM --help` and `PROGRAM SUB... --help` list is in the program's page:
  a top-level flag as an item (.TP tag) of OPTIONS; a subcommand's flag on that subcommand's
  SYNOPSIS line and once more outside the SYNOPSIS (gridnode-collector's: as an OPTIONS item);
  each subcommand has a SYNOPSIS line, and a COMMANDS item where the page has that section. gridnoded's --collector.NAME and
  --no-collector.NAME pairs are one item whose text names every driver.
- every item of OPTIONS names a flag the program has (no stale flags).
- every section and key of the packaged agent.toml (commented-out keys too) is in agent.toml(5)
  under a heading [section], as an item; and every item under such a heading is a key of that
  section of the packaged file.
- groff reads every page without a warning (but for lines it cannot adjust or break).

groff renders the pages (nothing here parses troff beyond finding .SH, .SS and .TP lines), and
CLI11's --help is what lists the flags, so a flag added to a program needs no change here.
Prints one line per problem; exits 1 if there is any.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib

FLAG = re.compile(r"(?<![\w.-])(--?[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|-[A-Za-z])(?![\w-])")
SWITCH = re.compile(r"^--(no-)?collector\.([a-z0-9_]+)$")  # gridnoded's per-driver pair
PROGRAMS = {"gridnoded": "gridnoded.8", "gridnodectl": "gridnodectl.1",
            "gridnode-collector": "gridnode-collector.8"}
# Pages whose OPTIONS hold the subcommands' flags too (the others describe them with their
# command: gridnodectl's COMMANDS, gridnoded's enroll).
SUBCOMMAND_FLAGS_IN_OPTIONS = {"gridnode-collector"}

problems = []
# MANPAGE_CHECK_CACHE=DIR keeps groff's and --help's answers there, keyed by their input, so
# that the test's runs on altered copies of the pages redo only what changed.
CACHE = os.environ.get("MANPAGE_CHECK_CACHE")


def cached(key, compute):
    if not CACHE:
        return compute()
    path = os.path.join(CACHE, hashlib.sha256(json.dumps(key).encode()).hexdigest())
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        pass
    value = compute()
    os.makedirs(CACHE, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)
    return value


def problem(text):
    problems.append(text)
    print("FAIL - " + text)


def groff(source, args=()):
    def run():
        env = dict(os.environ, LC_ALL="C.UTF-8")
        r = subprocess.run(["groff", "-man", "-Tutf8", *args], input=source,
                           capture_output=True, text=True, env=env, check=False)
        return [r.stdout, r.stderr]

    return tuple(cached(["groff", list(args), source], run))


def render(source):
    """The page as text: one line per paragraph (a line length no paragraph reaches), no
    hyphenation, no bold or underline; U+2010/U+2212 back to '-'."""
    out, _ = groff(source, ["-rLL=20000n", "-rHY=0", "-P-cbou"])
    return out.replace("\u2010", "-").replace("\u2212", "-").replace("\u2019", "'")


def skeleton(source):
    """The page's headings and item tags, rendered: [(kind, text)], kind SH, SS or TP. Each is
    made a paragraph of its own, marked, and groff renders it (fonts, escapes, quoted arguments)."""
    lines = source.split("\n")
    out = [".TH SKELETON 1", ".SH S", ".nh"]
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\.(SH|SS)\s*(.*)$", line)
        if m:
            text = m.group(2).strip()
            if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                text = text[1:-1]
            out += [".PP", "@@%s@@ %s" % (m.group(1), text)]
        elif re.match(r"^\.TP\b", line) and i + 1 < len(lines):
            out += [".PP", "@@TP@@", lines[i + 1]]
            i += 1
        i += 1
    items = []
    for row in render("\n".join(out) + "\n").splitlines():
        m = re.match(r"^\s*@@(SH|SS|TP)@@\s*(.*?)\s*$", row)
        if m:
            items.append((m.group(1), m.group(2)))
    return items


class Page:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            self.source = f.read()
        self.text = render(self.source)
        # Rendered lines by .SH section (headings start in column 0).
        self.sections = {}
        current = None
        for row in self.text.splitlines():
            if row and not row[0].isspace():
                current = row.strip()
                self.sections.setdefault(current, [])
            elif current is not None:
                self.sections[current].append(row)
        # Tags by heading: "OPTIONS" -> [...], "[agent]" -> [...]; SS headings own their tags,
        # and also count for their SH (tags_under).
        self.tags = {}
        self.parent = {}
        sh = ss = None
        for kind, text in skeleton(self.source):
            if kind == "SH":
                sh, ss = text, None
                self.tags.setdefault(sh, [])
            elif kind == "SS":
                ss = text
                self.parent[ss] = sh
                self.tags.setdefault(ss, [])
            else:
                self.tags.setdefault(ss or sh, []).append(text)

    def tags_under(self, heading):
        out = list(self.tags.get(heading, []))
        for ss, sh in self.parent.items():
            if sh == heading:
                out += self.tags.get(ss, [])
        return out

    def synopsis(self):
        return [r.strip() for r in self.sections.get("SYNOPSIS", []) if r.strip()]

    def outside_synopsis(self):
        return "\n".join("\n".join(rows) for name, rows in self.sections.items()
                         if name != "SYNOPSIS")

    def blocks(self):
        """Rendered paragraphs (runs of non-blank lines)."""
        return [b for b in re.split(r"\n\s*\n", self.text) if b.strip()]


def flags_in(text):
    return set(FLAG.findall(text))


def words(text):
    return re.findall(r"[A-Za-z0-9_.\[\]-]+", text)


def has_words(line, path):
    """The words of `path` stand in `line` one after another."""
    w = line.split()
    return any(w[k:k + len(path)] == path for k in range(len(w) - len(path) + 1))


def help_of(argv):
    """CLI11's --help: (flags, subcommands)."""
    def run():
        r = subprocess.run([*argv, "--help"], capture_output=True, text=True, check=False)
        return [r.returncode, r.stdout, r.stderr]

    # Keyed by the binary's identity too: a rebuilt program is asked again.
    st = os.stat(argv[0])
    rc, stdout, stderr = cached(["help", argv, st.st_mtime_ns, st.st_size], run)
    if rc != 0:
        problem("%s --help exited %d: %s" % (" ".join(argv), rc, stderr.strip()))
        return set(), []
    flags, subs, part = set(), [], None
    for row in stdout.splitlines():
        m = re.match(r"^([A-Za-z][A-Za-z ]*):\s*$", row)
        if m:
            part = m.group(1).lower()
            continue
        if part == "options":
            m = re.match(r"^\s{1,4}(-\S+)", row)
            if m:
                flags |= {n for n in m.group(1).split(",") if n.startswith("-")}
        elif part == "subcommands":
            m = re.match(r"^\s{1,4}([a-z][a-z0-9-]*)(?:,\s*[a-z][a-z0-9-]*)*\s", row + " ")  # "gpus, accelerators": the first name
            if m:
                subs.append(m.group(1))
    if not flags:
        problem("%s --help lists no options (has CLI11's help format changed?)" % " ".join(argv))
    return flags, subs


def commands(bin_dir, program):
    """[(path, flags)] for the program and every subcommand, depth first."""
    out = []

    def walk(path):
        flags, subs = help_of([os.path.join(bin_dir, program), *path])
        out.append((path, flags - {"-h", "--help"}))
        for s in subs:
            walk(path + [s])

    walk([])
    return out


def check_program(bin_dir, man_dir, program):
    page = Page(os.path.join(man_dir, PROGRAMS[program]))
    every = commands(bin_dir, program)
    known = set().union(*(f for _, f in every)) | {"-h", "--help"}
    option_tags = page.tags_under("OPTIONS")
    if not option_tags:
        problem("%s: no OPTIONS items" % page.name)
    tag_flags = set().union(*(flags_in(t) for t in option_tags)) if option_tags else set()
    synopsis = page.synopsis()
    described = page.outside_synopsis()
    described_flags = flags_in(described)
    top = every[0][1]
    switches = {}
    for f in sorted(top):
        m = SWITCH.match(f)
        if program == "gridnoded" and m:
            switches.setdefault(m.group(2), set()).add(f)
        elif f not in tag_flags:
            problem("%s: %s (from %s --help) is not an OPTIONS item" % (page.name, f, program))
    if switches:
        pair = [b for b in page.blocks()
                if "--collector.NAME" in b and "--no-collector.NAME" in b]
        if not pair:
            problem("%s: no item for --collector.NAME, --no-collector.NAME" % page.name)
        else:
            named = set(words(pair[0]))
            for driver in sorted(switches):
                if driver not in named:
                    problem("%s: --collector.%s: the driver %s is not listed with "
                            "--collector.NAME" % (page.name, driver, driver))
    for f in sorted(tag_flags - known):
        if not (program == "gridnoded" and f in ("--collector.NAME", "--no-collector.NAME")):
            problem("%s: the OPTIONS item %s is not a flag of %s" % (page.name, f, program))
    command_tags = page.tags_under("COMMANDS")
    for path, flags in every[1:]:
        label = "%s %s" % (program, " ".join(path))
        lines = [l for l in synopsis if l.startswith(program + " ") and has_words(l, path)]
        if not lines:
            problem("%s: no SYNOPSIS line for %s" % (page.name, label))
        elif flags and not any(flags <= flags_in(l) for l in lines):
            best = max(lines, key=lambda l: len(flags & flags_in(l)))
            for f in sorted(flags - flags_in(best)):
                problem("%s: %s (from %s --help) is not on its SYNOPSIS line" %
                        (page.name, f, label))
        for f in sorted(flags - described_flags):
            problem("%s: %s (from %s --help) is described nowhere but the SYNOPSIS" %
                    (page.name, f, label))
        if program in SUBCOMMAND_FLAGS_IN_OPTIONS:
            for f in sorted(flags - tag_flags):
                problem("%s: %s (from %s --help) is not an OPTIONS item" % (page.name, f, label))
        if command_tags and not any(t.split()[:len(path)] == path for t in command_tags):
            problem("%s: no COMMANDS item for %s" % (page.name, " ".join(path)))
    print("checked %s: %d commands, %d flags" % (page.name, len(every),
                                                   sum(len(f) for _, f in every)))


def packaged_keys(path):
    """{section: [keys]} of agent.toml, keys that are commented out included: a comment line
    that, without its '#', is a TOML key/value line (an array may go on over further comment
    lines)."""
    out, section = {}, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$", line)
        if m:
            section = m.group(1)
            out.setdefault(section, [])
        else:
            m = re.match(r"^(#\s?)?([A-Za-z0-9_]+)\s*=", line)
            if m and section is not None:
                text, j = line[len(m.group(1) or ""):], i
                while True:
                    try:
                        tomllib.loads(text)
                        out[section].append(m.group(2))
                        i = j
                        break
                    except tomllib.TOMLDecodeError:
                        j += 1
                        if not m.group(1) or j >= len(lines) or j > i + 8 or \
                                not lines[j].startswith("#"):
                            break  # prose that happens to hold " = "
                        text += "\n" + lines[j].lstrip("#")
        i += 1
    return out


def check_agent_toml(man_dir, agent_toml):
    page = Page(os.path.join(man_dir, "agent.toml.5"))
    keys = packaged_keys(agent_toml)
    if not keys:
        problem("%s: no sections found" % agent_toml)
    total = 0
    for section, names in keys.items():
        heading = "[%s]" % section
        if heading not in page.tags:
            problem("agent.toml.5: the section %s of the packaged agent.toml has no heading" %
                    heading)
            continue
        documented = set(words(" ".join(page.tags[heading])))
        for k in names:
            total += 1
            if k not in documented:
                problem("agent.toml.5: %s %s (in the packaged agent.toml) is not an item of %s" %
                        (heading, k, heading))
    for heading, tags in page.tags.items():
        m = re.match(r"^\[([A-Za-z0-9_.-]+)\]$", heading)
        if not m:
            continue
        section = m.group(1)
        if section not in keys:
            problem("agent.toml.5: %s is not a section of the packaged agent.toml" % heading)
            continue
        for k in sorted(set(words(" ".join(tags))) - set(keys[section])):
            problem("agent.toml.5: the item %s of %s is not in the packaged agent.toml's %s" %
                    (k, heading, heading))
    print("checked agent.toml.5: %d sections, %d keys of the packaged agent.toml" %
          (len(keys), total))


def check_warnings(man_dir):
    for name in sorted(os.listdir(man_dir)):
        if not re.search(r"\.[1-8]$", name):
            continue
        with open(os.path.join(man_dir, name), encoding="utf-8") as f:
            # Every warning but a line that cannot be adjusted or broken (a long regex in
            # agent.toml(5); lintian ignores those too).
            _, err = groff(f.read(), ["-ww", "-Wbreak", "-z"])
        if err.strip():
            problem("%s: groff warns: %s" % (name, err.strip().replace("\n", "; ")))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bin_dir, man_dir, agent_toml = sys.argv[1:]
    check_warnings(man_dir)
    for program in PROGRAMS:
        if os.path.exists(os.path.join(man_dir, PROGRAMS[program])):
            check_program(bin_dir, man_dir, program)
        elif program != "gridnode-collector":
            problem("%s: no manual page %s" % (program, PROGRAMS[program]))
    check_agent_toml(man_dir, agent_toml)
    print("%d problems" % len(problems))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
