package admission

import "sort"

// sortedLines sorts and de-duplicates lines; nil when there are none, so
// an answer without warnings has no warnings field.
func sortedLines(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	s := append([]string(nil), lines...)
	sort.Strings(s)
	out := s[:1]
	for _, l := range s[1:] {
		if l != out[len(out)-1] {
			out = append(out, l)
		}
	}
	return out
}
