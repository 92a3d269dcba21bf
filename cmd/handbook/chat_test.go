package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
	"handbook/tokenizer"
)

// demoModel writes the tiny demo model (recipes/tiny/model: config, tokenizer, chat template)
// with seeded random weights into a temporary directory; edit, when given, changes the weights
// before they are saved.
func demoModel(t *testing.T, edit ...func(model.Weights)) string {
	t.Helper()
	t.Setenv("GOMLX_BACKEND", "go")
	dir := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), must(os.ReadFile(filepath.Join("../../recipes/tiny/model", f))), 0o644))
	}
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Init(b, dir, 0, 7)
	require.NoError(t, err)
	defer m.Finalize()
	for _, e := range edit {
		e(m.Weights)
	}
	require.NoError(t, m.Save(dir, model.SaveOptions{}))
	return dir
}

// terminal is the master side of a pseudo-terminal a chat runs in.
type terminal struct {
	t   *testing.T
	pty *os.File
	out chan string
	buf strings.Builder
}

func (term *terminal) pump() {
	r := bufio.NewReader(term.pty)
	for {
		chunk := make([]byte, 4096)
		n, err := r.Read(chunk)
		if n > 0 {
			term.out <- string(chunk[:n])
		}
		if err != nil {
			close(term.out)
			return
		}
	}
}

// until reads the terminal until its output ends with suffix and returns it (newlines as \n).
func (term *terminal) until(suffix string) string {
	term.t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		text := strings.ReplaceAll(term.buf.String(), "\r\n", "\n")
		if strings.HasSuffix(text, suffix) {
			term.buf.Reset()
			return text
		}
		select {
		case chunk, ok := <-term.out:
			require.True(term.t, ok, "the chat ended early; it printed %q", text)
			term.buf.WriteString(chunk)
		case <-deadline:
			require.Fail(term.t, "no "+suffix, "the chat printed %q", text)
		}
	}
}

// say types a line and returns what the chat printed before its next prompt, the echo removed.
func (term *terminal) say(line string) string {
	term.t.Helper()
	_, err := io.WriteString(term.pty, line+"\n")
	require.NoError(term.t, err)
	text := term.until("\n> ")
	text = strings.TrimPrefix(text, line+"\n")
	return strings.TrimSuffix(text, "\n> ")
}

// generated is `handbook generate --messages` for a conversation: the oracle of each chat turn.
func generated(t *testing.T, dir string, conversation []tokenizer.Message) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conversation.json")
	require.NoError(t, os.WriteFile(path, must(json.Marshal(conversation)), 0o644))
	code, stdout, stderr := runCLI(t, "generate", "--model", dir, "--messages", path, "--max_new_tokens", "6", "--json")
	require.Equal(t, 0, code, stderr)
	var r struct{ Text string }
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &r))
	return strings.TrimSpace(r.Text)
}

// TestChatInATerminal drives `handbook chat` through a pseudo-terminal: each answer equals what
// `generate --messages` gives for the conversation so far (so the history is kept), /reset starts
// over, a conversation longer than the context drops its oldest turns, and /exit quits.
func TestChatInATerminal(t *testing.T) {
	dir := demoModel(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "chat", "--model", dir, "--max_new_tokens", "6", "--system", "Answer briefly.")
	cmd.Env = append(os.Environ(), "HANDBOOK_RUN_CLI=1", "GOMLX_BACKEND=go")
	var notes bytes.Buffer
	cmd.Stderr = &notes
	ptmx, err := pty.Start(cmd)
	require.NoError(t, err)
	defer ptmx.Close()
	term := &terminal{t: t, pty: ptmx, out: make(chan string, 64)}
	go term.pump()

	banner := term.until("\n> ")
	assert.Contains(t, banner, "chatting with "+dir+" (256-token context); /reset starts over, /exit quits")

	system := tokenizer.Message{Role: "system", Content: "Answer briefly."}
	first := term.say("sort: cab")
	require.NotEmpty(t, strings.TrimSpace(first), "the model answered nothing: the comparisons below would prove little")
	conv := []tokenizer.Message{system, {Role: "user", Content: "sort: cab"}}
	assert.Equal(t, generated(t, dir, conv), strings.TrimSpace(first))
	second := term.say("and: zyx")
	conv = append(conv, tokenizer.Message{Role: "assistant", Content: strings.TrimSpace(first)}, tokenizer.Message{Role: "user", Content: "and: zyx"})
	assert.Equal(t, generated(t, dir, conv), strings.TrimSpace(second))

	assert.Equal(t, "(new conversation)", term.say("/reset"))
	third := term.say("and: zyx")
	assert.Equal(t, generated(t, dir, []tokenizer.Message{system, {Role: "user", Content: "and: zyx"}}), strings.TrimSpace(third))
	assert.Contains(t, term.say("/nonsense"), "unknown command /nonsense")

	long := strings.Repeat("abc ", 50)
	term.say(long)
	term.say(long)
	assert.Contains(t, term.say(strings.Repeat("abcdef ", 100)), "error: the message takes")

	_, err = io.WriteString(ptmx, "/exit\n")
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	assert.Contains(t, notes.String(), "dropped its 2 oldest messages")
}

// TestStreamerPrintsAsTokensArrive: the chat's streamer writes each token's text when it is
// generated (holding back a split character), and the whole answer at the end.
func TestStreamerPrintsAsTokensArrive(t *testing.T) {
	tok, err := tokenizer.Load("../../recipes/tiny/model")
	require.NoError(t, err)
	ids, err := tok.Encode("abc def é", false)
	require.NoError(t, err)
	var out bytes.Buffer
	s := &streamer{tok: tok, w: &out}
	var sizes []int
	for _, id := range ids {
		s.add(int32(id))
		sizes = append(sizes, out.Len())
	}
	answer, err := s.finish()
	require.NoError(t, err)
	assert.Equal(t, "abc def é", answer)
	assert.Equal(t, "abc def é", out.String())
	assert.Greater(t, sizes[1], 0, "nothing printed before the answer ended")
	assert.Less(t, sizes[1], sizes[len(sizes)-1], "the answer was printed at once")
}
