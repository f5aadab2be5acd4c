package data

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// Generate writes about n tokens' worth of structured synthetic English: short
// sentences from a small grammar with agreement, counting sequences and simple
// arithmetic facts. It is not meant to be good prose; it has enough structure
// (word order, agreement, sequences) that a model which really uses context
// predicts the next token better than one that cannot see it.
func Generate(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 0x7e47))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	nouns := []string{"cat", "dog", "river", "teacher", "machine", "garden", "city", "child", "storm", "bird", "engine", "letter"}
	adjs := []string{"small", "quiet", "bright", "old", "heavy", "green", "strange", "calm", "busy", "cold"}
	verbsS := []string{"watches", "follows", "finds", "builds", "carries", "remembers", "crosses", "opens"}
	verbsP := []string{"watch", "follow", "find", "build", "carry", "remember", "cross", "open"}
	places := []string{"near the hill", "in the morning", "after the rain", "by the old bridge", "under the trees", "at the market"}
	var sb strings.Builder
	words := 0
	for words < n*3/4 {
		var s string
		switch rng.IntN(6) {
		case 0, 1:
			s = "The " + pick(adjs) + " " + pick(nouns) + " " + pick(verbsS) + " the " + pick(nouns) + " " + pick(places) + "."
		case 2:
			s = "The " + pick(nouns) + "s " + pick(verbsP) + " a " + pick(adjs) + " " + pick(nouns) + "."
		case 3:
			a := rng.IntN(40)
			k := 1 + rng.IntN(3)
			parts := make([]string, 6)
			for i := range parts {
				parts[i] = strconv.Itoa(a + i*k)
			}
			s = "Counting by " + strconv.Itoa(k) + ": " + strings.Join(parts, ", ") + "."
		case 4:
			a, b := rng.IntN(50), rng.IntN(50)
			s = strconv.Itoa(a) + " plus " + strconv.Itoa(b) + " is " + strconv.Itoa(a+b) + "."
		default:
			x := pick(nouns)
			s = "When the " + x + " " + pick(verbsS) + " the " + pick(nouns) + ", the " + x + " is " + pick(adjs) + "."
		}
		sb.WriteString(s)
		words += strings.Count(s, " ") + 2
		if rng.IntN(5) == 0 {
			sb.WriteString("\n")
		} else {
			sb.WriteString(" ")
		}
	}
	return sb.String()
}
