package evidence

// keywordIndex finds every rule keyword in a text in one pass (an
// Aho-Corasick automaton over ASCII-lowercased bytes), so that a rule's
// regular expression runs only near the places its keywords occur, as
// gitleaks' keyword prefilter intends, instead of over all of the output.
type keywordIndex struct {
	next  [][256]int32 // state x byte -> state
	out   [][]int32    // state -> keywords ending here
	words []string
}

func newKeywordIndex(words []string) *keywordIndex {
	k := &keywordIndex{words: words}
	k.next = append(k.next, [256]int32{})
	k.out = append(k.out, nil)
	// The trie; -1 marks a missing edge until the links are filled in.
	for i := range k.next[0] {
		k.next[0][i] = -1
	}
	for wi, w := range words {
		s := int32(0)
		for i := 0; i < len(w); i++ {
			c := lower(w[i])
			if k.next[s][c] < 0 {
				var row [256]int32
				for j := range row {
					row[j] = -1
				}
				k.next = append(k.next, row)
				k.out = append(k.out, nil)
				k.next[s][c] = int32(len(k.next) - 1)
			}
			s = k.next[s][c]
		}
		k.out[s] = append(k.out[s], int32(wi))
	}
	// Breadth first: a missing edge goes where the longest proper suffix
	// goes, and a state reports what its suffix states report.
	fail := make([]int32, len(k.next))
	var queue []int32
	for c := range 256 {
		if t := k.next[0][c]; t < 0 {
			k.next[0][c] = 0
		} else {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		k.out[s] = append(k.out[s], k.out[fail[s]]...)
		for c := range 256 {
			t := k.next[s][c]
			if t < 0 {
				k.next[s][c] = k.next[fail[s]][c]
				continue
			}
			fail[t] = k.next[fail[s]][c]
			queue = append(queue, t)
		}
	}
	return k
}

// scan calls hit with the keyword's index and its start for every
// occurrence of a keyword in b, ignoring ASCII case.
func (k *keywordIndex) scan(b []byte, hit func(word int, start int)) {
	s := int32(0)
	for i, c := range b {
		s = k.next[s][lower(c)]
		for _, w := range k.out[s] {
			hit(int(w), i+1-len(k.words[w]))
		}
	}
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
