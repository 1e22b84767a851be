// Errors, libbpf's log and argument checks shared by the handles.
#include "common.h"

#include <unistd.h>

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>

namespace xvs {

namespace {

// Linux-internal errnos that leak out of the bpf() syscall and that glibc has no name for.
const char* KernelErrnoName(int err) {
  switch (err) {
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    case 525: return "ETOOSMALL";
    default: return nullptr;
  }
}

std::string ErrnoMessage(int err) {
  if (err == 524) return "Operation not supported";
  return strerror(err);
}

std::string ErrnoCode(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  if (const char* name = KernelErrnoName(err)) return name;
  return "E" + std::to_string(err);
}

// A failed load prints the whole verifier log as one message: keep its end, where the
// verifier says what it rejected, and a little of everything libbpf said around it.
constexpr size_t kMessageTail = 64 * 1024;
constexpr size_t kLogTail = kMessageTail + 16 * 1024;

std::mutex logMutex;
std::string libbpfLog;

std::string Tail(std::string text, size_t limit) {
  if (text.size() <= limit) return text;
  return "...\n" + text.substr(text.size() - limit);
}

int CollectLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int length = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (length <= 0) return 0;
  std::string message(static_cast<size_t>(length) + 1, '\0');
  vsnprintf(message.data(), message.size(), format, args);
  message.pop_back();
  std::lock_guard<std::mutex> lock(logMutex);
  libbpfLog = Tail(libbpfLog + Tail(std::move(message), kMessageTail), kLogTail);
  return 0;
}

}  // namespace

void ThrowErrno(Napi::Env env, int err, const std::string& what, const std::string& detail) {
  std::string message = what + ": " + ErrnoMessage(err);
  if (!detail.empty()) message += "\n" + detail;
  ThrowError(env, err, message);
}

void ThrowError(Napi::Env env, int err, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, ErrnoCode(err)));
  throw error;
}

void InstallLibbpfPrint() { libbpf_set_print(CollectLibbpfPrint); }

void ClearLibbpfLog() {
  std::lock_guard<std::mutex> lock(logMutex);
  libbpfLog.clear();
}

std::string TakeLibbpfLog() {
  std::lock_guard<std::mutex> lock(logMutex);
  std::string log;
  log.swap(libbpfLog);
  while (!log.empty() && log.back() == '\n') log.pop_back();
  return log;
}

bool FdInfoHas(int fd, const char* key) {
  std::ifstream fdinfo("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(fdinfo, line)) {
    if (line.rfind(key, 0) == 0) return true;
  }
  return false;
}

namespace {

[[noreturn]] void ThrowType(Napi::Env env, const char* name, const char* expected) {
  throw Napi::TypeError::New(env, std::string(name) + " must be " + expected);
}

}  // namespace

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) ThrowType(info.Env(), name, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) ThrowType(info.Env(), name, "a number");
  double value = info[i].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= UINT32_MAX) || value != static_cast<uint32_t>(value)) {
    ThrowType(info.Env(), name, "an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(value);
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBuffer()) ThrowType(info.Env(), name, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

const HandleInit& TakeHandleInit(const Napi::CallbackInfo& info, const char* className) {
  if (!info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), std::string(className) + " is not constructible from JS");
  }
  return *info[0].As<Napi::External<HandleInit>>().Data();
}

bool IsNullish(const Napi::Value& value) { return value.IsNull() || value.IsUndefined(); }

void OwnedFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

int OwnedFd::Open(Napi::Env env, const std::string& what) const {
  if (fd_ < 0) ThrowError(env, EBADF, what + " is closed");
  return fd_;
}

}  // namespace xvs
