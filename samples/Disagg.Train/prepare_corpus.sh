#!/usr/bin/env bash
# Writes the King James Bible (public domain; Debian packages bible-kjv-text + bible-kjv) as plain text for
# Disagg.Train: one verse a line, "Book<TAB>chapter<TAB>verse<TAB>text", in canonical order (31,102 verses).
# Usage: samples/Disagg.Train/prepare_corpus.sh [OUT]   (default: kjv.tsv in the current directory)
# The corpus is not committed; the trainer reads it from the path given with --corpus.
set -euo pipefail
out="${1:-kjv.tsv}"

if ! command -v bible >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bible-kjv bible-kjv-text >/dev/null
fi

# The formatted dump names books by abbreviation ("Ge1:1 In the beginning..."); the unformatted one prints the full name
# as a heading ("Genesis 1"), so each abbreviation's first verse gives its book's name.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bible -f "Gen1:1-Rev22:21" </dev/null >"$tmp/verses"
sed -E 's/^([0-9]?[A-Za-z]+)[0-9]+:.*/\1/' "$tmp/verses" | uniq >"$tmp/abbreviations"
while read -r abbreviation; do
  name="$(bible "${abbreviation}1:1" </dev/null | sed -n 2p | sed -E 's/ [0-9]+$//')"
  printf '%s\t%s\n' "$abbreviation" "$name"
done <"$tmp/abbreviations" >"$tmp/books"

awk -F'\t' 'NR == FNR { book[$1] = $2; next }
  {
    match($0, /^[0-9]?[A-Za-z]+/); abbreviation = substr($0, 1, RLENGTH)
    rest = substr($0, RLENGTH + 1); split(rest, numbers, /[: ]/)
    text = substr(rest, index(rest, " ") + 1)
    printf "%s\t%s\t%s\t%s\n", book[abbreviation], numbers[1], numbers[2], text
  }' "$tmp/books" "$tmp/verses" >"$out"

verses="$(wc -l <"$out")"
books="$(cut -f1 "$out" | uniq | wc -l)"
[ "$verses" -eq 31102 ] && [ "$books" -eq 66 ] || { echo "unexpected corpus: $verses verses in $books books" >&2; exit 1; }
echo "wrote $out: $verses verses in $books books"
