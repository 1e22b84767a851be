// NativeObject: a bpf_object from open through configure and load to close.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xvs {

namespace {

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class Object : public Napi::ObjectWrap<Object> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeObject",
                       {
                           InstanceAccessor<&Object::Name>("name"),
                           InstanceMethod<&Object::MapNames>("mapNames"),
                           InstanceMethod<&Object::ProgramNames>("programNames"),
                           InstanceMethod<&Object::SetMapMaxEntries>("setMapMaxEntries"),
                           InstanceMethod<&Object::MapInitialValue>("mapInitialValue"),
                           InstanceMethod<&Object::SetMapInitialValue>("setMapInitialValue"),
                           InstanceMethod<&Object::ReusePinnedMap>("reusePinnedMap"),
                           InstanceMethod<&Object::BtfStructOf>("btfStruct"),
                           InstanceMethod<&Object::BtfDatasecOf>("btfDatasec"),
                           InstanceMethod<&Object::BtfEnumOf>("btfEnum"),
                           InstanceMethod<&Object::Load>("load"),
                           InstanceMethod<&Object::Map>("map"),
                           InstanceMethod<&Object::Program>("program"),
                           InstanceMethod<&Object::Close>("close"),
                       });
  }

  explicit Object(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Object>(info) {
    if (!info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeObject is not constructible from JS");
    }
    obj_ = info[0].As<Napi::External<struct bpf_object>>().Data();
    name_ = bpf_object__name(obj_);
  }

  ~Object() override { CloseObject(); }

 private:
  struct bpf_object* Obj(Napi::Env env) const {
    if (!obj_) ThrowError(env, EBADF, "object " + name_ + " is closed");
    return obj_;
  }

  // Global-data maps are named "<object>.rodata" by libbpf: ".rodata" finds them too.
  struct bpf_map* FindMap(const Napi::CallbackInfo& info) const {
    struct bpf_object* obj = Obj(info.Env());
    std::string name = StringArg(info, 0, "map");
    if (struct bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str())) return map;
    struct bpf_map* map;
    bpf_object__for_each_map(map, obj) {
      if (name[0] == '.' && EndsWith(bpf_map__name(map), name)) return map;
    }
    ThrowError(info.Env(), ENOENT, "object " + name_ + " has no map " + name);
  }

  std::string Call(const char* call, const struct bpf_map* map) const {
    return std::string(call) + "(" + bpf_map__name(map) + ")";
  }

  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

  Napi::Value MapNames(const Napi::CallbackInfo& info) {
    Napi::Array names = Napi::Array::New(info.Env());
    struct bpf_map* map;
    bpf_object__for_each_map(map, Obj(info.Env())) names.Set(names.Length(), bpf_map__name(map));
    return names;
  }

  Napi::Value ProgramNames(const Napi::CallbackInfo& info) {
    Napi::Array names = Napi::Array::New(info.Env());
    struct bpf_program* program;
    bpf_object__for_each_program(program, Obj(info.Env())) {
      names.Set(names.Length(), bpf_program__name(program));
    }
    return names;
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo& info) {
    struct bpf_map* map = FindMap(info);
    Check(info.Env(), bpf_map__set_max_entries(map, U32Arg(info, 1, "maxEntries")),
          Call("bpf_map__set_max_entries", map));
    return info.Env().Undefined();
  }

  Napi::Value MapInitialValue(const Napi::CallbackInfo& info) {
    struct bpf_map* map = FindMap(info);
    size_t size = 0;
    const void* data = bpf_map__initial_value(map, &size);
    if (!data) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), static_cast<const uint8_t*>(data), size);
  }

  Napi::Value SetMapInitialValue(const Napi::CallbackInfo& info) {
    struct bpf_map* map = FindMap(info);
    Napi::Buffer<uint8_t> data = BufferArg(info, 1, "data");
    Check(info.Env(), bpf_map__set_initial_value(map, data.Data(), data.Length()),
          Call("bpf_map__set_initial_value", map));
    return info.Env().Undefined();
  }

  Napi::Value ReusePinnedMap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_map* map = FindMap(info);
    std::string path = StringArg(info, 1, "path");
    int fd = bpf_obj_get(path.c_str());
    Check(env, fd, "bpf_obj_get(" + path + ")");
    // libbpf keeps a dup of its own.
    int err = bpf_map__reuse_fd(map, fd);
    close(fd);
    Check(env, err, Call("bpf_map__reuse_fd", map) + " with " + path);
    return env.Undefined();
  }

  Napi::Value BtfStructOf(const Napi::CallbackInfo& info) {
    return BtfStruct(info.Env(), bpf_object__btf(Obj(info.Env())), StringArg(info, 0, "name"));
  }

  Napi::Value BtfDatasecOf(const Napi::CallbackInfo& info) {
    return BtfDatasec(info.Env(), bpf_object__btf(Obj(info.Env())), StringArg(info, 0, "name"));
  }

  Napi::Value BtfEnumOf(const Napi::CallbackInfo& info) {
    return BtfEnum(info.Env(), bpf_object__btf(Obj(info.Env())), StringArg(info, 0, "name"));
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    struct bpf_object* obj = Obj(info.Env());
    ClearLibbpfLog();
    int err = bpf_object__load(obj);
    if (err < 0) ThrowErrno(info.Env(), -err, "bpf_object__load(" + name_ + ")", TakeLibbpfLog());
    return info.Env().Undefined();
  }

  // Every handle owns a dup of the object's fd, so handles and object close independently.
  int Dup(Napi::Env env, int fd, const std::string& what) const {
    if (fd < 0) ThrowError(env, EINVAL, what + " is not loaded: load() the object first");
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0) ThrowErrno(env, errno, "dup(" + what + ")");
    return dup;
  }

  Napi::Value Map(const Napi::CallbackInfo& info) {
    struct bpf_map* map = FindMap(info);
    std::string name = bpf_map__name(map);
    return NewMap(info.Env(), Dup(info.Env(), bpf_map__fd(map), "map " + name), name);
  }

  Napi::Value Program(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = StringArg(info, 0, "program");
    struct bpf_program* program = bpf_object__find_program_by_name(Obj(env), name.c_str());
    if (!program) ThrowError(env, ENOENT, "object " + name_ + " has no program " + name);
    int fd = Dup(env, bpf_program__fd(program), "program " + name);
    return NewProgram(env, fd, name, bpf_program__type(program));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseObject();
    return info.Env().Undefined();
  }

  void CloseObject() {
    bpf_object__close(obj_);
    obj_ = nullptr;
  }

  struct bpf_object* obj_ = nullptr;
  std::string name_;
};

}  // namespace

void InitObject(Napi::Env env, Constructors& ctors) {
  ctors.object = Napi::Persistent(Object::Define(env));
}

Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  ClearLibbpfLog();
  struct bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) {
    int err = errno;
    ThrowErrno(env, err, "bpf_object__open_file(" + path + ")", TakeLibbpfLog());
  }
  return Ctors(env).object.New({Napi::External<struct bpf_object>::New(env, obj)});
}

}  // namespace xvs
