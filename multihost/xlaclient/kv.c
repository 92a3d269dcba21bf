// The PJRT side of the key-value store: a copy of a plugin's API table whose PJRT_Client_Create
// hands the plugin callbacks into the Go store (see client.go).
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "pjrt_abi.h"

static PJRT_Client_Create_Fn hb_real_create;
static uintptr_t hb_store;  // cgo.Handle of the Go store

static void hb_free_value(char* value) { free(value); }

PJRT_Error* hb_callback_error(PJRT_CallbackError* callback_error, int code, const char* message,
                              size_t message_size) {
  return (*callback_error)(code, message, message_size);
}

static PJRT_Error* hb_kv_get(PJRT_KeyValueGetCallback_Args* a) {
  PJRT_Error* err = hbKVGet((uintptr_t)a->user_arg, (char*)a->key, a->key_size, a->timeout_in_ms,
                            a->callback_error, &a->value, &a->value_size);
  a->value_deleter_callback = hb_free_value;
  return err;
}

static PJRT_Error* hb_kv_try_get(PJRT_KeyValueTryGetCallback_Args* a) {
  PJRT_Error* err = hbKVGet((uintptr_t)a->user_arg, (char*)a->key, a->key_size, -1,
                            a->callback_error, &a->value, &a->value_size);
  a->value_deleter_callback = hb_free_value;
  return err;
}

static PJRT_Error* hb_kv_put(PJRT_KeyValuePutCallback_Args* a) {
  return hbKVPut((uintptr_t)a->user_arg, (char*)a->key, a->key_size, (char*)a->value,
                 a->value_size, a->callback_error);
}

static PJRT_Error* hb_client_create(PJRT_Client_Create_Args* args) {
  args->kv_get_callback = hb_kv_get;
  args->kv_get_user_arg = (void*)hb_store;
  args->kv_put_callback = hb_kv_put;
  args->kv_put_user_arg = (void*)hb_store;
  if (args->struct_size >= offsetof(PJRT_Client_Create_Args, kv_try_get_user_arg) + sizeof(void*)) {
    args->kv_try_get_callback = hb_kv_try_get;
    args->kv_try_get_user_arg = (void*)hb_store;
  }
  return hb_real_create(args);
}

// hb_wrap_plugin loads the plugin at path and returns a copy of its PJRT_Api whose
// PJRT_Client_Create passes the store's callbacks; NULL with *err (static text) on failure.
const void* hb_wrap_plugin(const char* path, uintptr_t store, const char** err) {
  void* lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
  if (lib == NULL) {
    *err = dlerror();
    return NULL;
  }
  const PJRT_Api_Head* (*get_api)(void) = (const PJRT_Api_Head* (*)(void))dlsym(lib, "GetPjrtApi");
  if (get_api == NULL) {
    *err = "the library has no GetPjrtApi symbol: it is not a PJRT plugin";
    return NULL;
  }
  const PJRT_Api_Head* api = get_api();
  if (api == NULL || api->struct_size < sizeof(PJRT_Api_Head)) {
    *err = "the plugin's PJRT_Api table is missing or too short";
    return NULL;
  }
  PJRT_Api_Head* copy = calloc(1, api->struct_size);
  if (copy == NULL) {
    *err = "out of memory";
    return NULL;
  }
  memcpy(copy, api, api->struct_size);
  hb_real_create = api->PJRT_Client_Create;
  hb_store = store;
  copy->PJRT_Client_Create = hb_client_create;
  return copy;
}
