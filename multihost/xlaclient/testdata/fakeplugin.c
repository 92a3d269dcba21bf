// A test stand-in for a multi-process PJRT plugin (built by the tests with cc). It forwards
// everything to the real XLA CPU plugin (FAKE_PJRT_REAL) except PJRT_Client_Create, where it first
// does through the key-value callbacks what XLA's GPU client does at creation: put this node's
// topology, then wait for every node's. It writes what it saw to FAKE_PJRT_REPORT, and fails the
// creation with the callback's error when a get fails (FAKE_PJRT_GET_MISSING asks for a key
// nobody sets).
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pjrt_abi.h"

typedef struct {
  size_t struct_size;
  void* extension_start;
  const char* name;
  size_t name_size;
  int type;  // 1: int64
  union {
    const char* string_value;
    int64_t int64_value;
    const int64_t* int64_array_value;
    float float_value;
    bool bool_value;
  };
  size_t value_size;
} NamedValue;

typedef struct { size_t struct_size; void* ext; PJRT_Error* error; } ErrorDestroyArgs;
typedef struct { size_t struct_size; void* ext; const PJRT_Error* error; const char* message; size_t message_size; } ErrorMessageArgs;
typedef struct { size_t struct_size; void* ext; const PJRT_Error* error; int code; } ErrorGetCodeArgs;
typedef void (*ErrorDestroyFn)(ErrorDestroyArgs*);
typedef void (*ErrorMessageFn)(ErrorMessageArgs*);
typedef PJRT_Error* (*ErrorGetCodeFn)(ErrorGetCodeArgs*);

typedef struct { int code; char message[1024]; size_t size; } FakeError;
#define MAX_ERRORS 64
static FakeError* fake_errors[MAX_ERRORS];

static const PJRT_Api_Head* real;
static PJRT_Api_Head* api;

static PJRT_Error* new_error(int code, const char* message, size_t size) {
  FakeError* e = calloc(1, sizeof(FakeError));
  e->code = code;
  e->size = size < sizeof(e->message) ? size : sizeof(e->message) - 1;
  memcpy(e->message, message, e->size);
  for (int i = 0; i < MAX_ERRORS; i++) {
    if (fake_errors[i] == NULL) {
      fake_errors[i] = e;
      break;
    }
  }
  return (PJRT_Error*)e;
}

static int fake_index(const PJRT_Error* e) {
  for (int i = 0; i < MAX_ERRORS; i++) {
    if (fake_errors[i] != NULL && (const PJRT_Error*)fake_errors[i] == e) return i;
  }
  return -1;
}

static void error_destroy(ErrorDestroyArgs* a) {
  int i = fake_index(a->error);
  if (i < 0) return ((ErrorDestroyFn)real->before_client_create[0])(a);
  free(fake_errors[i]);
  fake_errors[i] = NULL;
}

static void error_message(ErrorMessageArgs* a) {
  int i = fake_index(a->error);
  if (i < 0) return ((ErrorMessageFn)real->before_client_create[1])(a);
  a->message = fake_errors[i]->message;
  a->message_size = fake_errors[i]->size;
}

static PJRT_Error* error_get_code(ErrorGetCodeArgs* a) {
  int i = fake_index(a->error);
  if (i < 0) return ((ErrorGetCodeFn)real->before_client_create[2])(a);
  a->code = fake_errors[i]->code;
  return NULL;
}

static PJRT_CallbackError callback_error = new_error;

static PJRT_Error* get(PJRT_Client_Create_Args* args, const char* key, int timeout_ms, char* out, size_t out_size) {
  PJRT_KeyValueGetCallback_Args g = {0};
  g.struct_size = sizeof g;
  g.key = key;
  g.key_size = strlen(key);
  g.timeout_in_ms = timeout_ms;
  g.callback_error = &callback_error;
  g.user_arg = args->kv_get_user_arg;
  PJRT_Error* err = args->kv_get_callback(&g);
  if (err != NULL) return err;
  snprintf(out, out_size, "%.*s", (int)g.value_size, g.value);
  g.value_deleter_callback(g.value);
  return NULL;
}

static PJRT_Error* client_create(PJRT_Client_Create_Args* args) {
  int64_t node = 0, nodes = 1;
  const NamedValue* opts = args->create_options;
  for (size_t i = 0; i < args->num_options; i++) {
    if (opts[i].type != 1) continue;
    if (opts[i].name_size == 7 && memcmp(opts[i].name, "node_id", 7) == 0) node = opts[i].int64_value;
    if (opts[i].name_size == 9 && memcmp(opts[i].name, "num_nodes", 9) == 0) nodes = opts[i].int64_value;
  }
  if (args->kv_get_callback == NULL || args->kv_put_callback == NULL) {
    const char* msg = "fake plugin: no key-value callbacks";
    return new_error(HB_PJRT_UNAVAILABLE, msg, strlen(msg));
  }
  char key[64], value[256], report[4096] = "";
  snprintf(key, sizeof key, "fake/topology/%lld", (long long)node);
  snprintf(value, sizeof value, "node %lld pid %d", (long long)node, getpid());
  PJRT_KeyValuePutCallback_Args p = {0};
  p.struct_size = sizeof p;
  p.key = key;
  p.key_size = strlen(key);
  p.value = value;
  p.value_size = strlen(value);
  p.callback_error = &callback_error;
  p.user_arg = args->kv_put_user_arg;
  PJRT_Error* err = args->kv_put_callback(&p);
  if (err != NULL) return err;
  for (int64_t k = 0; k < nodes; k++) {
    snprintf(key, sizeof key, "fake/topology/%lld", (long long)k);
    if ((err = get(args, key, 10000, value, sizeof value)) != NULL) return err;
    snprintf(report + strlen(report), sizeof report - strlen(report), "saw %s\n", value);
  }
  if (getenv("FAKE_PJRT_GET_MISSING") != NULL) {
    if ((err = get(args, "fake/never-set", 300, value, sizeof value)) != NULL) return err;
  }
  PJRT_KeyValueTryGetCallback_Args t = {0};
  t.struct_size = sizeof t;
  t.key = "fake/absent";
  t.key_size = strlen(t.key);
  t.callback_error = &callback_error;
  t.user_arg = args->kv_try_get_user_arg;
  err = args->kv_try_get_callback(&t);
  if (err != NULL) {
    int i = fake_index(err);
    snprintf(report + strlen(report), sizeof report - strlen(report), "try_get fake/absent: code %d: %s\n",
             fake_errors[i]->code, fake_errors[i]->message);
    ErrorDestroyArgs d = {sizeof d, NULL, err};
    error_destroy(&d);
  }
  FILE* f = fopen(getenv("FAKE_PJRT_REPORT"), "w");
  if (f != NULL) {
    fputs(report, f);
    fclose(f);
  }
  return real->PJRT_Client_Create(args);
}

const PJRT_Api_Head* GetPjrtApi(void) {
  if (api != NULL) return api;
  void* lib = dlopen(getenv("FAKE_PJRT_REAL"), RTLD_LAZY | RTLD_LOCAL);
  if (lib == NULL) return NULL;
  const PJRT_Api_Head* (*get_api)(void) = (const PJRT_Api_Head* (*)(void))dlsym(lib, "GetPjrtApi");
  real = get_api();
  api = calloc(1, real->struct_size);
  memcpy(api, real, real->struct_size);
  api->before_client_create[0] = (void*)error_destroy;
  api->before_client_create[1] = (void*)error_message;
  api->before_client_create[2] = (void*)error_get_code;
  api->PJRT_Client_Create = client_create;
  return api;
}
