// withNetns: run a synchronous JS function with this thread in another network namespace.
// netnsCookie: the calling thread's network namespace's cookie, unique for the boot (unlike its
// inode number, which the kernel hands out again once the namespace is gone).
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

#include <cerrno>

namespace xvs {

namespace {

int OpenNamespace(Napi::Env env, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open(" + path + ")");
  return fd;
}

void Enter(Napi::Env env, int fd, const std::string& path) {
  if (setns(fd, CLONE_NEWNET) < 0) ThrowErrno(env, errno, "setns(" + path + ")");
}

}  // namespace

Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "nsPath");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "fn must be a function");
  const std::string home = "/proc/thread-self/ns/net";
  OwnedFd saved(OpenNamespace(env, home));
  OwnedFd target(OpenNamespace(env, path));
  Enter(env, target.get(), path);
  Napi::Value result;
  try {
    result = info[1].As<Napi::Function>().Call({});
  } catch (const Napi::Error&) {
    Enter(env, saved.get(), home);
    throw;
  }
  Enter(env, saved.get(), home);
  return result;
}

Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifndef SO_NETNS_COOKIE
  constexpr int SO_NETNS_COOKIE = 71;
#endif
  OwnedFd sock(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) ThrowErrno(env, errno, "socket(AF_UNIX)");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0) {
    ThrowErrno(env, errno, "getsockopt(SO_NETNS_COOKIE)");
  }
  return Napi::BigInt::New(env, cookie);
}

}  // namespace xvs
