package sandbox

import "strings"

// segKind is what a piece of template source is.
type segKind int

const (
	segText segKind = iota
	segComment
	segExpr // {{ … }}
	segStmt // {% … %}
)

// segment is one piece of template source. Tags keep their delimiters with the
// whitespace markers (open "{%-", close "+%}") so the rewritten template trims
// whitespace exactly as the original does.
type segment struct {
	kind        segKind
	open, close string
	text        string // the tag's inner text, or the raw text
	line        int
}

func (s segment) String() string { return s.open + s.text + s.close }

// scan splits source into segments the way the jinja library's scanner does:
// quotes inside tags hide closers, brackets nest, and {% raw %} … {% endraw %}
// is text. The sandbox must see exactly the tags the library will see.
func scan(source string) ([]segment, bool) {
	var segs []segment
	line, textLine := 1, 1
	textStart := 0
	raw := false
	i := 0
	advance := func() {
		if source[i] == '\n' {
			line++
		}
		i++
	}
	for i < len(source) {
		if raw {
			if strings.HasPrefix(source[i:], "{%") {
				if end := strings.Index(source[i+2:], "%}"); end >= 0 &&
					strings.TrimSpace(strings.Trim(strings.TrimSpace(source[i+2:i+2+end]), "-+")) == "endraw" {
					raw = false
				}
			}
			if raw {
				advance()
				continue
			}
		}
		if source[i] != '{' || i+1 >= len(source) {
			advance()
			continue
		}
		var kind segKind
		var closer string
		switch source[i+1] {
		case '{':
			kind, closer = segExpr, "}}"
		case '%':
			kind, closer = segStmt, "%}"
		case '#':
			kind, closer = segComment, "#}"
		default:
			advance()
			continue
		}
		if i > textStart {
			segs = append(segs, segment{kind: segText, text: source[textStart:i], line: textLine})
		}
		tagStart, tagLine := i, line
		i += 2
		if i < len(source) && (source[i] == '-' || source[i] == '+') {
			i++
		}
		contentStart := i
		found := false
		depth := 0
		for i < len(source) {
			ch := source[i]
			if kind != segComment && (ch == '\'' || ch == '"') {
				advance()
				for i < len(source) && source[i] != ch {
					if source[i] == '\\' && i+1 < len(source) {
						advance()
					}
					advance()
				}
				if i < len(source) {
					advance()
				}
				continue
			}
			if depth == 0 && (ch == '-' || ch == '+') && i+2 < len(source) && source[i+1] == closer[0] && source[i+2] == closer[1] {
				segs = append(segs, segment{kind: kind, open: source[tagStart:contentStart], text: source[contentStart:i],
					close: source[i : i+3], line: tagLine})
				i += 3
				found = true
				break
			}
			if depth == 0 && i+1 < len(source) && ch == closer[0] && source[i+1] == closer[1] {
				segs = append(segs, segment{kind: kind, open: source[tagStart:contentStart], text: source[contentStart:i],
					close: source[i : i+2], line: tagLine})
				i += 2
				found = true
				break
			}
			if kind != segComment {
				switch ch {
				case '(', '[', '{':
					depth++
				case ')', ']', '}':
					depth--
				}
			}
			advance()
		}
		if !found {
			return nil, false
		}
		if kind == segStmt && strings.TrimSpace(segs[len(segs)-1].text) == "raw" {
			raw = true
		}
		textStart, textLine = i, line
	}
	if textStart < len(source) {
		segs = append(segs, segment{kind: segText, text: source[textStart:], line: textLine})
	}
	return segs, true
}

// stmtKeyword is a statement's first word, as the library reads it.
func stmtKeyword(text string) string {
	text = strings.TrimSpace(text)
	for i, r := range text {
		if !isLetter(r) && r != '_' {
			return text[:i]
		}
	}
	return text
}
