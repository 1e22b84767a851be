// Shared by every native/*.cc: errors as JS values, libbpf's log, and the handle factories.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

struct btf;

namespace xvs {

// Throws a JS Error "<what>: <strerror>" with `errno` (positive) and `code` ('ENOENT').
// `detail`, when given, follows on the next lines (libbpf's log, the verifier's log).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what,
                             const std::string& detail = "");
// The same error with a message that says it all already ("no such interface: eth9").
[[noreturn]] void ThrowError(Napi::Env env, int err, const std::string& message);

// An owned file descriptor, closed when reset or destroyed.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { Reset(); }

  void Reset(int fd = -1);
  int get() const { return fd_; }
  // The fd, or a JS error "<what> is closed" once it was reset.
  int Open(Napi::Env env, const std::string& what) const;

 private:
  int fd_ = -1;
};

// libbpf calls return a negative errno on failure.
inline void Check(Napi::Env env, int ret, const std::string& what) {
  if (ret < 0) ThrowErrno(env, -ret, what);
}

// libbpf's warnings go to a buffer instead of stderr; the calls that can fail with a
// story to tell (open, load) clear it before and attach it to their error.
void InstallLibbpfPrint();
void ClearLibbpfLog();
std::string TakeLibbpfLog();

// True when /proc/self/fdinfo/<fd> has a line starting with `key` ("map_type:", "link_type:"):
// tells a pinned map from a pinned program or link before reading its info.
bool FdInfoHas(int fd, const char* key);

// Argument access that throws TypeError instead of crashing on a wrong JS type.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool IsNullish(const Napi::Value& value);

// The handle classes register their constructors here at module init.
struct Constructors {
  Napi::FunctionReference object;
  Napi::FunctionReference map;
  Napi::FunctionReference program;
  Napi::FunctionReference link;
  Napi::FunctionReference ringBuffer;
};
Constructors& Ctors(Napi::Env env);

void InitObject(Napi::Env env, Constructors& ctors);
void InitMap(Napi::Env env, Constructors& ctors);
void InitProgram(Napi::Env env, Constructors& ctors);
void InitLink(Napi::Env env, Constructors& ctors);
void InitRingBuffer(Napi::Env env, Constructors& ctors);

// What a factory hands to a handle's constructor, wrapped in an External so that JS cannot
// forge a handle around an arbitrary fd.
struct HandleInit {
  int fd;
  std::string name;
  uint32_t type;
};
// The HandleInit of a constructor call (throws TypeError when JS called the constructor).
const HandleInit& TakeHandleInit(const Napi::CallbackInfo& info, const char* className);

// Each factory takes ownership of `fd`. An empty map name means "ask the kernel".
Napi::Object NewMap(Napi::Env env, int fd, const std::string& name);
Napi::Object NewProgram(Napi::Env env, int fd, const std::string& name, uint32_t type);
Napi::Object NewLink(Napi::Env env, int fd);
// The fd of a NativeMap handle (throws when `value` is not one, or is closed).
int MapFd(Napi::Value value);

// NativeBtfStruct / NativeBtfVar[] / NativeBtfEnumValue[] for a name, null when the BTF (or btf itself) has none.
Napi::Value BtfStruct(Napi::Env env, const struct btf* btf, const std::string& name);
Napi::Value BtfDatasec(Napi::Env env, const struct btf* btf, const std::string& name);
Napi::Value BtfEnum(Napi::Env env, const struct btf* btf, const std::string& name);

// Module-level functions, each defined next to the handle it deals with.
Napi::Value OpenObject(const Napi::CallbackInfo& info);
Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info);
Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info);
Napi::Value NewRingBuffer(const Napi::CallbackInfo& info);
Napi::Value WithNetns(const Napi::CallbackInfo& info);
Napi::Value NetnsCookie(const Napi::CallbackInfo& info);

}  // namespace xvs
