// withNetns: run a synchronous JS function with this thread in another network namespace.
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

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

}  // namespace xvs
