# train.awk TWEETS: count each word per label; a word's weight is
# (positive - negative) / (positive + negative). Writes model/weights.tsv.
BEGIN {
	FS = "\t"
	"sed -n 's/^ *min_count: *\\([0-9]*\\).*/\\1/p' params.yaml" | getline min
	if (min == "")
		min = 1
}
{
	n = split($2, w, " ")
	for (i = 1; i <= n; i++) {
		if ($1 == "positive")
			pos[w[i]]++
		else
			neg[w[i]]++
		seen[w[i]] = 1
	}
}
END {
	system("mkdir -p model")
	out = "model/weights.tsv"
	for (word in seen) {
		total = pos[word] + neg[word]
		if (total >= min)
			printf "%s\t%.3f\n", word, (pos[word] - neg[word]) / total > out
	}
	close(out)
	system("sort -o model/weights.tsv model/weights.tsv")
	print "train: " length(seen) " words"
}
