"""The corpora step of `python -m helpers assets` (helpers.assets runs the steps): the Debian packages' files,
extracted by fetch_debs below, turned into clean UTF-8 documents (English: Jane Austen's novels and the
King James Bible; Russian: fortunes, man pages, GIMP's help; WordNet's glosses), split by document into
train/validation/test by a fixed rule (split_of), and written under <cache>/corpora/<name>/ (helpers.data reads
them).
"""
from __future__ import annotations

import gzip
import hashlib
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rdata
from tqdm.auto import tqdm

from .paths import FETCH_CMD, AssetError, is_done, mark_done, run_quiet, stamp, cache_dir

DEBIAN_PACKAGES = {
    # corpus -> packages
    "en": ["r-cran-janeaustenr", "bible-kjv-text", "bible-kjv"],
    "ru": ["fortunes-ru", "manpages-ru", "gimp-help-ru"],
    "wordnet": ["wordnet-base"],
}
SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------------- Debian packages
def fetch_debs(packages: list[str] | None = None) -> Path:
    """Download the .deb files and unpack each into extract/<package>/ (never installed)."""
    packages = packages or [p for ps in DEBIAN_PACKAGES.values() for p in ps]
    debs, extract = cache_dir() / "debs", cache_dir() / "extract"
    debs.mkdir(parents=True, exist_ok=True)
    extract.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise AssetError(
            "apt-get/dpkg not found: the Debian text corpora cannot be fetched on this machine. "
            "Use any UTF-8 text file instead: helpers.data.load_corpus('/path/to/file.txt')."
        )
    missing = [p for p in packages if not is_done(extract / p) and next(debs.glob(f"{p}_*.deb"), None) is None]
    if missing:
        # all in one call: apt-get spends ~1.2 s of CPU reading its package lists at every start (one call for the
        # seven packages: 1.6 s; one call each: 9.8 s). A failure is retried, and named, package by package below
        run_quiet(["apt-get", "download", *missing], cwd=debs)
    for pkg in tqdm(packages, desc="debian packages", unit="pkg"):
        target = extract / pkg
        if is_done(target):
            continue
        deb = next(debs.glob(f"{pkg}_*.deb"), None)
        if deb is None:
            res = run_quiet(["apt-get", "download", pkg], cwd=debs)
            if res.returncode != 0:  # a fresh machine has no package lists yet: update once, then retry
                run_quiet(["apt-get", "update", "-qq"])
                res = run_quiet(["apt-get", "download", pkg], cwd=debs)
            deb = next(debs.glob(f"{pkg}_*.deb"), None)
            if res.returncode != 0 or deb is None:
                raise AssetError(
                    f"`apt-get download {pkg}` failed: {res.stderr.strip()[-300:]}\n"
                    "Fix: run `apt-get update` (as root) and then " + FETCH_CMD
                )
        if target.exists():
            shutil.rmtree(target)
        res = run_quiet(["dpkg", "-x", str(deb), str(target)])
        if res.returncode != 0:
            raise AssetError(f"`dpkg -x {deb}` failed: {res.stderr.strip()[-300:]}")
        mark_done(target, {"deb": deb.name})
    return extract



# --------------------------------------------------------------------------------------------- text cleaning
_CYR = re.compile(r"[\u0400-\u04FF]")
_LAT = re.compile(r"[A-Za-z]")


def cyrillic_dominant(line: str, min_letters: int = 3) -> bool:
    """True for lines with at least `min_letters` Cyrillic letters and more Cyrillic than Latin ones."""
    cyr = len(_CYR.findall(line))
    return cyr >= min_letters and cyr > len(_LAT.findall(line))


def _paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs (blank line = paragraph break)."""
    paras, cur = [], []
    for line in lines:
        line = line.strip()
        if line:
            cur.append(line)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return paras


def _austen_books(root: Path) -> dict[str, list[str]]:
    """The six novels from janeaustenr's R data base: .rdx is an index, .rdb holds records of
    (4-byte big-endian length, zlib stream) that decode to an R character vector (one element per line)."""

    base = root / "usr/lib/R/site-library/janeaustenr/data/Rdata"
    raw = (base.parent / "Rdata.rdb").read_bytes()
    books = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that .rdx/.rdb records lack an RDS header; they are RDS
        index = rdata.conversion.convert(rdata.parser.parse_file(str(base) + ".rdx"))
        for name, (offset, length) in index["variables"].items():
            record = raw[int(offset): int(offset) + int(length)]
            (size,) = struct.unpack(">i", record[:4])
            data = zlib.decompress(record[4:])
            if len(data) != size:
                raise AssetError(f"janeaustenr record {name}: {len(data)} bytes, header says {size}")
            books[str(name)] = [str(x) for x in rdata.conversion.convert(rdata.parser.parse_data(data))]
    return books


_CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\b")


def english_documents(extract: Path) -> list[dict]:
    """Austen chapters and KJV chapters, one document each."""
    docs = []
    for book, lines in _austen_books(extract / "r-cran-janeaustenr").items():
        chapters, cur = [], None
        for line in lines:
            if _CHAPTER.match(line):
                cur = []
                chapters.append(cur)
            elif cur is not None and not line.strip().startswith("VOLUME"):
                cur.append(line)
        for i, ch in enumerate(chapters):
            text = "\n".join(_paragraphs(ch))
            if text:
                docs.append({"doc": f"austen/{book}/{i + 1:03d}", "source": "austen", "text": text})
    root = extract / "bible-kjv"
    data_dir = extract / "bible-kjv-text" / "usr/lib"
    res = run_quiet([str(root / "usr/bin/bible"), "-f", "-p", str(data_dir), "gen1:1-rev22:21"],
                    stdin=subprocess.DEVNULL)
    if res.returncode != 0 or not res.stdout:
        raise AssetError(f"the `bible` decoder from bible-kjv failed: {res.stderr.strip()[-300:]}")
    chapters: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        ref, _, verse = line.partition(" ")
        m = re.match(r"^(\w+?)(\d+):\d+$", ref)
        if m and verse.strip():
            chapters.setdefault(f"kjv/{m.group(1)}{m.group(2)}", []).append(verse.strip())
    docs += [{"doc": k, "source": "kjv", "text": "\n".join(v)} for k, v in chapters.items()]
    return docs


class _HTMLText(html.parser.HTMLParser):
    """Visible text of an HTML page, one line per block element."""

    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd", "pre", "title", "td"}

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data.replace("\n", " "))


def _clean_lines(text: str) -> str:
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if cyrillic_dominant(ln))


def russian_documents(extract: Path) -> list[dict]:
    docs = []
    fortunes = extract / "fortunes-ru" / "usr/share/games/fortunes/ru"
    for f in sorted(fortunes.iterdir()):
        if f.is_file() and not f.is_symlink() and f.suffix != ".dat" and not f.name.endswith(".u8"):
            text = f.read_bytes().decode("utf-8", errors="replace").replace("\n%\n", "\n\n")
            text = _clean_lines(text)
            if text:
                docs.append({"doc": f"fortunes/{f.name}", "source": "fortunes", "text": text})
    groff = shutil.which("groff")
    if not groff:
        print("warning: groff not found, manpages-ru skipped (apt-get install groff-base to include it)",
              file=sys.stderr)
    pages = sorted((extract / "manpages-ru" / "usr/share/man/ru").glob("man*/*.gz")) if groff else []
    # groff renders the man pages in processes of its own while this one parses GIMP's HTML (pure Python): ~6 s of
    # the step's ~12 s each; the documents keep their order (fortunes, man pages, GIMP help)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rendered = pool.map(lambda page: _man_text(groff, page), pages)
        gimp = []
        for page in sorted((extract / "gimp-help-ru" / "usr/share/gimp/2.0/help/ru").glob("*.html")):
            p = _HTMLText()
            p.feed(page.read_text(encoding="utf-8", errors="replace"))
            text = _clean_lines("".join(p.parts))
            if text:
                gimp.append({"doc": f"gimp/{page.stem}", "source": "gimp-help", "text": text})
        docs += [{"doc": f"man/{page.parent.name}/{page.name[:-3]}", "source": "manpages", "text": text}
                 for page, text in zip(pages, rendered) if text]
    return docs + gimp


def _man_text(groff: str, page: Path) -> str:
    """A gzipped man page rendered to plain UTF-8 text by groff, cleaned (_clean_lines)."""
    env = {**os.environ, "GROFF_NO_SGR": "1", "MANWIDTH": "100"}
    res = subprocess.run([groff, "-k", "-Tutf8", "-mandoc", "-P-c"], input=gzip.decompress(page.read_bytes()),
                         capture_output=True, env=env)
    return _clean_lines(re.sub(r".\x08", "", res.stdout.decode("utf-8", errors="replace")))


_POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
_POS_OF = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}     # pointer pos letter -> data.<pos>


def parse_wordnet_line(line: str, pos: str) -> dict | None:
    """One synset line of WordNet's data.<pos> file (format: wndb(5WN)); None for the licence header."""
    if line.startswith("  ") or "|" not in line:
        return None
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    n_words = int(fields[3], 16)
    words = [re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(n_words)]
    # pointers: count, then (symbol, offset, pos, source/target) each; '@' / '@i' = (instance) hypernym
    at = 4 + 2 * n_words
    pointers = [fields[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(int(fields[at]))]
    hypernyms = [f"wn/{_POS_OF[p[2]]}/{p[1]}" for p in pointers if p[0] in ("@", "@i")]
    parts = [p.strip() for p in gloss.strip().split(";")]
    definition = "; ".join(p for p in parts if not p.startswith('"')).strip()
    examples = [p.strip('"') for p in parts if p.startswith('"')]
    return {
        "doc": f"wn/{pos}/{fields[0]}",
        "source": "wordnet",
        "word": words[0],
        "synonyms": words[1:],
        "pos": _POS[pos],
        "definition": definition,
        "examples": examples,
        "hypernyms": hypernyms,
        "text": f"{words[0]} ({_POS[pos]}): {definition}",
    }


def wordnet_documents(extract: Path) -> list[dict]:
    docs = []
    for pos in _POS:
        path = extract / "wordnet-base" / "usr/share/wordnet" / f"data.{pos}"
        with open(path, encoding="utf-8", errors="replace") as fh:
            docs += [d for d in (parse_wordnet_line(ln, pos) for ln in fh) if d and d["definition"]]
    return docs


def split_of(key: str) -> str:
    """The fixed by-document split rule: bucket = sha1(key) mod 100; < 5 test, 5-9 validation, else train."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < 5 else "validation" if bucket < 10 else "train"


def write_corpus(name: str, docs: list[dict], split_key=None) -> Path:
    """Write documents as <cache>/corpora/<name>/<split>.jsonl using the fixed by-document split rule."""
    out = cache_dir() / "corpora" / name
    out.mkdir(parents=True, exist_ok=True)
    key = split_key or (lambda d: d["doc"])
    handles = {s: open(out / f"{s}.jsonl.tmp", "w", encoding="utf-8") for s in SPLITS}
    counts = {s: {"documents": 0, "chars": 0} for s in SPLITS}
    for d in docs:
        s = split_of(key(d))
        handles[s].write(json.dumps(d, ensure_ascii=False) + "\n")
        counts[s]["documents"] += 1
        counts[s]["chars"] += len(d["text"])
    for s, h in handles.items():
        h.close()
        os.replace(out / f"{s}.jsonl.tmp", out / f"{s}.jsonl")
    mark_done(out, {"splits": counts, "format": CORPUS_FORMAT.get(name, 1)})
    return out


# bumped when a corpus's rows gain fields: a cache written by older code is rebuilt by `prepare_corpora`
CORPUS_FORMAT = {"wordnet": 2}          # 2: hypernym pointers (notebook 06's sibling negatives)


def corpus_format(folder: Path) -> int:
    try:
        return int(json.loads(stamp(folder).read_text()).get("format", 1))
    except (OSError, ValueError):
        return 0


def prepare_corpora(force: bool = False) -> None:
    extract = cache_dir() / "extract"
    builders = {
        "en": (english_documents, None),
        "ru": (russian_documents, None),
        # a word never appears in two splits: split WordNet by headword, not by synset
        "wordnet": (wordnet_documents, lambda d: d["word"].lower()),
    }
    for name, (build, key) in tqdm(builders.items(), desc="corpora", unit="corpus"):
        out = cache_dir() / "corpora" / name
        if is_done(out) and corpus_format(out) >= CORPUS_FORMAT.get(name, 1) and not force:
            continue
        missing = [p for p in DEBIAN_PACKAGES[name] if not is_done(extract / p)]
        if missing:
            fetch_debs(missing)
        write_corpus(name, build(extract), key)
