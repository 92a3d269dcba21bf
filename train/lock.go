package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LockFile is the lock a run holds in its output directory while it runs.
const LockFile = ".handbook.lock"

// lockHolder is what a lock file says about the run holding it.
type lockHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Since   time.Time `json:"since"`
	Command string    `json:"command"`
}

func (h lockHolder) String() string {
	return fmt.Sprintf("pid %d on %s since %s (%s)", h.PID, h.Host, h.Since.Format(time.DateTime), h.Command)
}

// LockedError is an output directory held by another run.
type LockedError struct {
	Dir    string
	Holder string // who holds it, as its lock file says
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("output_dir %s is in use by another run: %s; wait for it to end or use another output_dir "+
		"(if no such run exists, remove %s)", e.Dir, e.Holder, filepath.Join(e.Dir, LockFile))
}

// OutputLock is a run's exclusive hold on its output directory. Two runs on one
// directory would interleave metrics.jsonl and resume or rotate each other's
// checkpoints. Locks are per process and counted: taking a directory the
// process already holds succeeds (Run and the trainer it calls both lock).
type OutputLock struct {
	// Stale describes a previous holder that ended without releasing the lock
	// (killed); "" when there was none.
	Stale string
	entry *lockEntry
}

type lockEntry struct {
	path  string
	f     *os.File // nil when held through the exclusive-create fallback
	count int
	stale string
}

var (
	locksMu sync.Mutex
	locks   = map[string]*lockEntry{}
)

// LockOutputDir takes dir's lock, creating dir if needed. The lock is an
// flock(2) on dir/.handbook.lock, so the kernel releases it when its process
// dies however it dies; on filesystems without flock the file is created
// exclusively and a holder found dead on this host is taken over.
func LockOutputDir(dir string) (*OutputLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	if e, ok := locks[abs]; ok {
		e.count++
		return &OutputLock{entry: e}, nil
	}
	e, err := acquire(dir, filepath.Join(abs, LockFile))
	if err != nil {
		return nil, err
	}
	locks[abs] = e
	return &OutputLock{Stale: e.stale, entry: e}, nil
}

// Release lets go of the lock; the last release of a directory removes the lock file.
func (l *OutputLock) Release() error {
	if l == nil || l.entry == nil {
		return nil
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	e := l.entry
	l.entry = nil
	if e.count--; e.count > 0 {
		return nil
	}
	delete(locks, filepath.Dir(e.path))
	// Unlink while still holding the lock: a run that opened the old file then
	// finds its path gone and retries (see acquire).
	err := os.Remove(e.path)
	if e.f != nil {
		err = errors.Join(err, e.f.Close())
	}
	if err != nil {
		return fmt.Errorf("releasing %s: %w", e.path, err)
	}
	return nil
}

func me() lockHolder {
	host, _ := os.Hostname()
	return lockHolder{PID: os.Getpid(), Host: host, Since: time.Now().Round(time.Second), Command: strings.Join(os.Args, " ")}
}

func readHolder(data []byte) (lockHolder, bool) {
	var h lockHolder
	return h, len(data) > 0 && json.Unmarshal(data, &h) == nil && h.PID > 0
}

func describe(data []byte) string {
	if h, ok := readHolder(data); ok {
		return h.String()
	}
	return "an unknown process"
}

func acquire(dir, path string) (*lockEntry, error) {
	for attempt := 0; attempt < 5; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("output_dir lock: %w", err)
		}
		switch err := tryLock(f); {
		case errors.Is(err, errLockUnsupported):
			f.Close()
			return acquireExclusive(dir, path)
		case errors.Is(err, errLockHeld):
			data, _ := os.ReadFile(path)
			f.Close()
			return nil, &LockedError{Dir: dir, Holder: describe(data)}
		case err != nil:
			f.Close()
			return nil, fmt.Errorf("output_dir lock %s: %w", path, err)
		}
		if !stillNamed(path, f) { // released and unlinked between our open and lock
			f.Close()
			continue
		}
		e := &lockEntry{path: path, f: f, count: 1}
		if prev, err := os.ReadFile(path); err == nil && len(prev) > 0 {
			e.stale = describe(prev)
		}
		if err := writeHolder(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("output_dir lock %s: %w", path, err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("output_dir lock %s: it keeps changing hands", path)
}

func stillNamed(path string, f *os.File) bool {
	a, err1 := os.Stat(path)
	b, err2 := f.Stat()
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func writeHolder(f *os.File) error {
	data, err := json.Marshal(me())
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(append(data, '\n'), 0); err != nil {
		return err
	}
	return f.Sync()
}

// acquireExclusive is the lock where flock is unavailable: the file's existence
// is the lock. A holder on this host whose process is gone is stale and taken over.
func acquireExclusive(dir, path string) (*lockEntry, error) {
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			err = writeHolder(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("output_dir lock %s: %w", path, err)
			}
			return &lockEntry{path: path, count: 1}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("output_dir lock: %w", err)
		}
		data, _ := os.ReadFile(path)
		h, ok := readHolder(data)
		host, _ := os.Hostname()
		if !ok || h.Host != host || processAlive(h.PID) {
			return nil, &LockedError{Dir: dir, Holder: describe(data)}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("output_dir lock: removing the stale lock of %s: %w", h, err)
		}
	}
	return nil, fmt.Errorf("output_dir lock %s: another run took it", path)
}

var (
	errLockHeld        = errors.New("lock held")
	errLockUnsupported = errors.New("flock unsupported")
)
