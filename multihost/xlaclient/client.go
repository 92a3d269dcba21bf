package xlaclient

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "pjrt_abi.h"

const void* hb_wrap_plugin(const char* path, uintptr_t store, const char** err);
PJRT_Error* hb_callback_error(PJRT_CallbackError* callback_error, int code, const char* message, size_t message_size);
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/gomlx/go-xla/pjrt"
)

// Store is the job-wide key-value store PJRT exchanges topology and collective ids through.
// *multihost.Member implements it. Get's error must wrap context.DeadlineExceeded when the key
// was not set in time (PJRT retries on DEADLINE_EXCEEDED in some places).
type Store interface {
	Put(key string, value []byte) error
	Get(key string, timeout time.Duration) ([]byte, error)
	TryGet(key string) ([]byte, bool, error)
}

// Config says which PJRT plugin to start as which node of the job.
type Config struct {
	// Plugin is the path of the PJRT plugin library (the CUDA plugin: xla_cuda_plugin.so from
	// jax-cuda13-pjrt / jax-cuda12-pjrt).
	Plugin string
	// Options are the plugin's own create options; node_id and num_nodes are added.
	Options pjrt.NamedValuesMap
	// NodeID is this process's rank, NumNodes the job's process count.
	NodeID, NumNodes int
	Store            Store
}

// keyPrefix keeps PJRT's keys apart from the store's other users (the C API leaves avoiding
// collisions between users to the caller).
const keyPrefix = "pjrt/"

var created struct {
	sync.Mutex
	plugin string
}

// NewClient creates this process's PJRT client of a multi-process job: the plugin's
// PJRT_Client_Create gets node_id and num_nodes among its options and kv_get/kv_try_get/kv_put
// callbacks served by cfg.Store — what JAX's jax.distributed does for the CUDA plugin. A process
// has one such client (the callbacks stay bound to the store for the process's life, since
// collectives exchange their ids through it when they first run).
//
// go-xla v0.4.13 creates clients without the callbacks, so the plugin is loaded here, its PJRT_Api
// table copied with PJRT_Client_Create wrapped, and the copy handed to go-xla with
// pjrt.RegisterPreloadedPlugin; every other call goes to the plugin unchanged.
func NewClient(cfg Config) (*pjrt.Client, error) {
	if cfg.Store == nil {
		return nil, errors.New("xlaclient: no key-value store")
	}
	if cfg.NumNodes < 1 || cfg.NodeID < 0 || cfg.NodeID >= cfg.NumNodes {
		return nil, fmt.Errorf("xlaclient: node %d of %d is not a node of the job", cfg.NodeID, cfg.NumNodes)
	}
	path, err := filepath.Abs(cfg.Plugin)
	if err != nil {
		return nil, fmt.Errorf("xlaclient: plugin %q: %w", cfg.Plugin, err)
	}
	if strings.Contains(path, ",") {
		return nil, fmt.Errorf("xlaclient: plugin path %q contains a comma, which go-xla's backend configuration cannot carry", path)
	}
	created.Lock()
	defer created.Unlock()
	if created.plugin != "" {
		return nil, fmt.Errorf("xlaclient: this process already created its distributed client (plugin %s); PJRT's key-value callbacks are bound once per process", created.plugin)
	}
	handle := cgo.NewHandle(cfg.Store)
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	var cErr *C.char
	api := C.hb_wrap_plugin(cPath, C.uintptr_t(handle), &cErr)
	if api == nil {
		handle.Delete()
		return nil, fmt.Errorf("xlaclient: loading PJRT plugin %s: %s", path, C.GoString(cErr))
	}
	// The name starts with the path (go-xla looks an absolute name up among the loaded plugins
	// first, and guesses CUDA/CPU from it) and says it is this job's wrapped copy.
	name := fmt.Sprintf("%s#node%dof%d", path, cfg.NodeID, cfg.NumNodes)
	if err := pjrt.RegisterPreloadedPlugin(name, uintptr(api)); err != nil {
		return nil, fmt.Errorf("xlaclient: registering PJRT plugin %s: %w", path, err)
	}
	created.plugin = path
	plugin, err := pjrt.GetPlugin(name)
	if err != nil {
		return nil, fmt.Errorf("xlaclient: %w", err)
	}
	opts := pjrt.NamedValuesMap{}
	for k, v := range cfg.Options {
		opts[k] = v
	}
	opts["node_id"], opts["num_nodes"] = int64(cfg.NodeID), int64(cfg.NumNodes)
	client, err := plugin.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("xlaclient: creating the PJRT client of node %d of %d with %s: %w", cfg.NodeID, cfg.NumNodes, path, err)
	}
	return client, nil
}

// storeOf returns the Store behind a callback's user_arg.
func storeOf(h C.uintptr_t) Store { return cgo.Handle(h).Value().(Store) }

func callbackError(cb *C.PJRT_CallbackError, code C.int, err error) *C.PJRT_Error {
	msg := err.Error()
	cMsg := C.CString(msg)
	defer C.free(unsafe.Pointer(cMsg))
	return C.hb_callback_error(cb, code, cMsg, C.size_t(len(msg)))
}

//export hbKVGet
func hbKVGet(h C.uintptr_t, key *C.char, keySize C.size_t, timeoutMs C.int, cb *C.PJRT_CallbackError, value **C.char, valueSize *C.size_t) *C.PJRT_Error {
	store, k := storeOf(h), keyPrefix+C.GoStringN(key, C.int(keySize))
	var v []byte
	if timeoutMs < 0 { // kv_try_get
		var found bool
		var err error
		if v, found, err = store.TryGet(k); err != nil {
			return callbackError(cb, C.HB_PJRT_UNAVAILABLE, err)
		}
		if !found {
			return callbackError(cb, C.HB_PJRT_NOT_FOUND, fmt.Errorf("key %q is not set", k))
		}
	} else {
		var err error
		if v, err = store.Get(k, time.Duration(timeoutMs)*time.Millisecond); err != nil {
			code := C.int(C.HB_PJRT_UNAVAILABLE)
			if errors.Is(err, context.DeadlineExceeded) {
				code = C.HB_PJRT_DEADLINE_EXCEEDED
			}
			return callbackError(cb, code, err)
		}
	}
	*value, *valueSize = (*C.char)(C.CBytes(v)), C.size_t(len(v))
	return nil
}

//export hbKVPut
func hbKVPut(h C.uintptr_t, key *C.char, keySize C.size_t, value *C.char, valueSize C.size_t, cb *C.PJRT_CallbackError) *C.PJRT_Error {
	k := keyPrefix + C.GoStringN(key, C.int(keySize))
	if err := storeOf(h).Put(k, C.GoBytes(unsafe.Pointer(value), C.int(valueSize))); err != nil {
		return callbackError(cb, C.HB_PJRT_UNAVAILABLE, err)
	}
	return nil
}
