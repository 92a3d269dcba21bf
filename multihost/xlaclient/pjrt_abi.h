// The few declarations of XLA's PJRT C API (xla/pjrt/c/pjrt_c_api.h) that client creation with a
// key-value store needs, written out in ABI order. The C API only ever appends fields, and every
// struct carries its struct_size, so these prefixes hold for every plugin from API 0.4x on (the
// kv_try_get fields are used only when the caller's struct_size covers them).
#ifndef HANDBOOK_PJRT_ABI_H_
#define HANDBOOK_PJRT_ABI_H_

#include <stddef.h>
#include <stdint.h>

typedef struct PJRT_Error PJRT_Error;
typedef struct PJRT_Client PJRT_Client;

// PJRT_Error_Code values used here (absl status codes).
enum {
  HB_PJRT_DEADLINE_EXCEEDED = 4,
  HB_PJRT_NOT_FOUND = 5,
  HB_PJRT_UNAVAILABLE = 14,
};

typedef PJRT_Error* (*PJRT_CallbackError)(int code, const char* message, size_t message_size);

typedef void (*PJRT_KeyValue_ValueDeleter)(char* value);

typedef struct {
  size_t struct_size;
  void* extension_start;
  const char* key;
  size_t key_size;
  int timeout_in_ms;
  PJRT_CallbackError* callback_error;
  void* user_arg;
  char* value;       // out
  size_t value_size;  // out
  PJRT_KeyValue_ValueDeleter value_deleter_callback;  // out
} PJRT_KeyValueGetCallback_Args;

typedef struct {
  size_t struct_size;
  void* extension_start;
  const char* key;
  size_t key_size;
  PJRT_CallbackError* callback_error;
  void* user_arg;
  char* value;       // out
  size_t value_size;  // out
  PJRT_KeyValue_ValueDeleter value_deleter_callback;  // out
} PJRT_KeyValueTryGetCallback_Args;

typedef struct {
  size_t struct_size;
  void* extension_start;
  const char* key;
  size_t key_size;
  const char* value;
  size_t value_size;
  PJRT_CallbackError* callback_error;
  void* user_arg;
} PJRT_KeyValuePutCallback_Args;

typedef PJRT_Error* (*PJRT_KeyValueGetCallback)(PJRT_KeyValueGetCallback_Args* args);
typedef PJRT_Error* (*PJRT_KeyValueTryGetCallback)(PJRT_KeyValueTryGetCallback_Args* args);
typedef PJRT_Error* (*PJRT_KeyValuePutCallback)(PJRT_KeyValuePutCallback_Args* args);

typedef struct {
  size_t struct_size;
  void* extension_start;
  const void* create_options;  // const PJRT_NamedValue*
  size_t num_options;
  PJRT_KeyValueGetCallback kv_get_callback;
  void* kv_get_user_arg;
  PJRT_KeyValuePutCallback kv_put_callback;
  void* kv_put_user_arg;
  PJRT_Client* client;  // out
  PJRT_KeyValueTryGetCallback kv_try_get_callback;
  void* kv_try_get_user_arg;
} PJRT_Client_Create_Args;

typedef PJRT_Error* (*PJRT_Client_Create_Fn)(PJRT_Client_Create_Args* args);

// The head of PJRT_Api: its version, then the function table up to PJRT_Client_Create.
typedef struct {
  size_t struct_size;
  void* extension_start;
  struct {
    size_t struct_size;
    void* extension_start;
    int major_version;
    int minor_version;
  } pjrt_api_version;
  // PJRT_Error_Destroy, _Message, _GetCode; PJRT_Plugin_Initialize, _Attributes;
  // PJRT_Event_Destroy, _IsReady, _Error, _Await, _OnReady.
  void* before_client_create[10];
  PJRT_Client_Create_Fn PJRT_Client_Create;
} PJRT_Api_Head;

#endif  // HANDBOOK_PJRT_ABI_H_
