package creds

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// The SDK reads config.env with pydantic-settings, which calls
// python-dotenv's dotenv_values. This parser follows python-dotenv 1.2
// (the version in the SDK v0.4.2 lock file):
//
//   - KEY=VALUE lines, an optional "export " prefix, blank lines and
//     "# comments"; a line that does not parse is skipped (python-dotenv
//     logs it and goes on), and reported in dotenvFile.skipped.
//   - Unquoted values end at " #" (a comment) and are trimmed; as in
//     python-dotenv 1.2 (the SDK's lock), "KEY=  # note" is "# note" (later
//     releases read it as empty).
//   - 'single quotes': only \\ and \' are escapes.
//   - "double quotes": \\ \' \" \a \b \f \n \r \t \v escapes; values may
//     span lines, in either kind of quotes.
//   - ${VAR} and ${VAR:-default} are expanded in every value (python-dotenv
//     does not spare single quotes), from the keys above in the file first,
//     then the process environment (dotenv_values' override=True). $VAR
//     without braces stays as written.
//
// github.com/joho/godotenv (v1.5.1) was the library to use, but it differs
// where users notice: it expands ${VAR} only from keys earlier in the same
// file (a config.env with ${HOME} or ${PRESCIENT_API_KEY} from the
// environment loses the value), expands $VAR without braces (the SDK keeps
// it), knows only upper-case names in ${...} and has no ${VAR:-default}.

// dotenvFile is a parsed config.env.
type dotenvFile struct {
	keys    []string          // in file order, as written
	values  map[string]string // by key as written
	skipped []int             // line numbers python-dotenv would skip
}

var dotenvVarRE = regexp.MustCompile(`\$\{([^}:]*)(?::-([^}]*))?\}`)

// readDotenv reads and parses path; lookupEnv resolves ${VAR} from the
// environment.
func readDotenv(path string, lookupEnv func(string) (string, bool)) (*dotenvFile, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the user's own config.env, named by them: reading it is the point
	if err != nil {
		return nil, err
	}
	return parseDotenv(string(data), lookupEnv), nil
}

func parseDotenv(src string, lookupEnv func(string) (string, bool)) *dotenvFile {
	f := &dotenvFile{values: map[string]string{}}
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.TrimPrefix(src, "\ufeff")
	p := &dotenvParser{src: src, line: 1}
	for !p.eof() {
		start := p.line
		key, val, ok := p.binding()
		if !ok {
			f.skipped = append(f.skipped, start)
			p.skipLine()
			continue
		}
		if key == "" {
			continue
		}
		val = dotenvVarRE.ReplaceAllStringFunc(val, func(m string) string {
			g := dotenvVarRE.FindStringSubmatch(m)
			if v, ok := f.values[g[1]]; ok {
				return v
			}
			if v, ok := lookupEnv(g[1]); ok {
				return v
			}
			return g[2]
		})
		if _, seen := f.values[key]; !seen {
			f.keys = append(f.keys, key)
		}
		f.values[key] = val
	}
	return f
}

type dotenvParser struct {
	src  string
	pos  int
	line int
}

func (p *dotenvParser) eof() bool { return p.pos >= len(p.src) }

func (p *dotenvParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

func (p *dotenvParser) next() byte {
	c := p.src[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

func (p *dotenvParser) spaces() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.next()
	}
}

func (p *dotenvParser) skipLine() {
	for !p.eof() && p.next() != '\n' {
	}
}

// endOfLine accepts optional spaces, an optional comment and a newline.
func (p *dotenvParser) endOfLine() bool {
	p.spaces()
	if p.peek() == '#' {
		p.skipLine()
		return true
	}
	if p.eof() {
		return true
	}
	if p.peek() == '\n' {
		p.next()
		return true
	}
	return false
}

// binding parses one line; key is "" for a blank or comment line.
func (p *dotenvParser) binding() (key, val string, ok bool) {
	p.spaces()
	if p.eof() || p.peek() == '\n' || p.peek() == '#' {
		p.skipLine()
		return "", "", true
	}
	if strings.HasPrefix(p.src[p.pos:], "export ") {
		p.pos += len("export ")
		p.spaces()
	}
	if p.peek() == '\'' {
		k, good := p.quoted('\'')
		if !good {
			return "", "", false
		}
		key = k
	} else {
		start := p.pos
		for !p.eof() && !strings.ContainsRune("=# \t\n", rune(p.peek())) {
			p.next()
		}
		key = p.src[start:p.pos]
	}
	if key == "" {
		return "", "", false
	}
	p.spaces()
	if p.peek() != '=' {
		// "KEY" alone: python-dotenv yields None, which pydantic ignores.
		if p.endOfLine() {
			return "", "", true
		}
		return "", "", false
	}
	p.next()
	p.spaces()
	switch c := p.peek(); c {
	case '\'', '"':
		v, good := p.quoted(c)
		if !good || !p.endOfLine() {
			return "", "", false
		}
		return key, v, true
	}
	start := p.pos
	for !p.eof() && p.peek() != '\n' {
		p.next()
	}
	val = p.src[start:p.pos]
	if !p.eof() {
		p.next()
	}
	if i := commentRE.FindStringIndex(val); i != nil {
		val = val[:i[0]]
	}
	return key, strings.TrimSpace(val), true
}

var commentRE = regexp.MustCompile(`\s+#`)

// quoted reads a quoted string starting at its opening quote q.
func (p *dotenvParser) quoted(q byte) (string, bool) {
	p.next()
	var b strings.Builder
	for !p.eof() {
		c := p.next()
		switch {
		case c == q:
			return b.String(), true
		case c == '\\' && !p.eof():
			e := p.peek()
			if q == '\'' {
				if e == '\\' || e == '\'' {
					b.WriteByte(p.next())
					continue
				}
				b.WriteByte(c)
				continue
			}
			if r, ok := dqEscapes[e]; ok {
				p.next()
				b.WriteByte(r)
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

var dqEscapes = map[byte]byte{'\\': '\\', '\'': '\'', '"': '"', 'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}

// String describes the skipped lines, for warnings.
func (f *dotenvFile) skippedString() string {
	if len(f.skipped) == 0 {
		return ""
	}
	return fmt.Sprint(f.skipped)
}
