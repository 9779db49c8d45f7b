#!/bin/sh
# pre_process RAW_DIR OUT_DIR: lowercase the tweets, keep letters, drop
# words shorter than pre.min_len (params.yaml); one "label<TAB>text" line
# per tweet in OUT_DIR/tweets.tsv.
set -eu
raw=$1 out=$2
min_len=$(sed -n 's/^ *min_len: *\([0-9]*\).*/\1/p' params.yaml)
mkdir -p "$out"
cat "$raw"/*.csv | awk -F, -v min="$min_len" '
NR > 0 && $1 != "label" {
	text = tolower(substr($0, length($1) + 2))
	gsub(/[^a-z ]/, " ", text)
	n = split(text, w, " ")
	line = ""
	for (i = 1; i <= n; i++)
		if (length(w[i]) >= min)
			line = line (line == "" ? "" : " ") w[i]
	print $1 "\t" line
}' > "$out/tweets.tsv"
echo "pre_process: $(wc -l < "$out/tweets.tsv") tweets"
