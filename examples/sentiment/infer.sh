#!/bin/sh
# infer WEIGHTS NEW_DIR OUT: score each new tweet by the sum of its words'
# weights; one "label<TAB>score<TAB>tweet" line per tweet.
set -eu
weights=$1 new=$2 out=$3
mkdir -p "$(dirname "$out")"
cat "$new"/*.txt | awk -v weights="$weights" '
BEGIN { FS = "\t"; while ((getline line < weights) > 0) { split(line, f, "\t"); w[f[1]] = f[2] } }
{
	text = tolower($0)
	gsub(/[^a-z ]/, " ", text)
	n = split(text, words, " ")
	score = 0
	for (i = 1; i <= n; i++)
		score += w[words[i]]
	printf "%s\t%+.2f\t%s\n", (score >= 0 ? "positive" : "negative"), score, $0
}' > "$out"
cat "$out"
