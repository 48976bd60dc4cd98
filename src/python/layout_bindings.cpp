// Bindings of the layout algebra. Python passes plain nested tuples of ints
// (and ScaledBasis leaves for identity layouts); every function takes and
// returns (shape, stride) pairs, so enigma/layout.py stays a thin wrapper.
#include "bindings.h"

#include "enigma/layout/int_tuple.h"
#include "enigma/layout/layout.h"
#include "enigma/layout/swizzle.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace enigma {
namespace {

using layout::IntTuple;
using layout::Layout;
using layout::LayoutError;
using layout::Tiler;

// v@m: the value v at mode path m of a coordinate (CuTe's ScaledBasis).
struct ScaledBasis {
  int64_t value;
  std::vector<int> modes;
};

std::string py_type_name(nb::handle h) { return nb::cast<std::string>(nb::str(h.type().attr("__name__"))); }

IntTuple to_it(nb::handle h, const char* what) {
  PyObject* o = h.ptr();
  if (PyLong_Check(o) && !PyBool_Check(o)) return IntTuple(nb::cast<int64_t>(h));
  if (PyTuple_Check(o)) {
    std::vector<IntTuple> e;
    for (nb::handle x : nb::borrow<nb::tuple>(h)) e.push_back(to_it(x, what));
    return IntTuple::tuple(std::move(e));
  }
  if (nb::isinstance<ScaledBasis>(h)) {
    const auto& b = nb::cast<const ScaledBasis&>(h);
    return IntTuple::basis(b.value, b.modes);
  }
  throw nb::type_error((std::string(what) + " must be an int or a (nested) tuple of ints, got " + py_type_name(h) +
                        " " + nb::cast<std::string>(nb::repr(h)))
                           .c_str());
}

nb::object from_it(const IntTuple& t) {
  if (t.is_tuple()) {
    nb::list l;
    for (const auto& e : t.elems()) l.append(from_it(e));
    return nb::tuple(l);
  }
  if (t.is_basis()) return nb::cast(ScaledBasis{t.value(), t.modes()});
  return nb::int_(t.value());
}

Layout to_layout(nb::handle shape, nb::handle stride) {
  IntTuple s = to_it(shape, "shape");
  if (stride.is_none()) return Layout(s);
  return Layout(s, to_it(stride, "stride"));
}

nb::tuple out(const Layout& l) { return nb::make_tuple(from_it(l.shape()), from_it(l.stride())); }

// Tiler encoding from enigma/layout.py: [shape, stride] is a layout, None is
// "_", an int n is n:1, a tuple applies its elements mode by mode.
Tiler to_tiler(nb::handle h) {
  PyObject* o = h.ptr();
  if (h.is_none()) return Tiler::underscore();
  if (PyList_Check(o)) {
    nb::list l = nb::borrow<nb::list>(h);
    return Tiler(to_layout(l[0], l[1]));
  }
  if (PyLong_Check(o) && !PyBool_Check(o)) return Tiler(nb::cast<int64_t>(h));
  if (PyTuple_Check(o)) {
    std::vector<Tiler> m;
    for (nb::handle x : nb::borrow<nb::tuple>(h)) m.push_back(to_tiler(x));
    return Tiler::tuple(std::move(m));
  }
  throw nb::type_error(("a tiler must be a Layout, an int, None or a tuple of them, got " + py_type_name(h)).c_str());
}

std::vector<int> modes_of(nb::handle h) {
  if (PyLong_Check(h.ptr())) return {nb::cast<int>(h)};
  std::vector<int> m;
  for (nb::handle x : h) m.push_back(nb::cast<int>(x));
  return m;
}

}  // namespace

void bind_layout(nb::module_& m) {
  // LayoutError is an EnigmaError (the core's KernelError) and a ValueError.
  nb::object base = m.attr("EnigmaError");
  nb::object bases = nb::make_tuple(base, nb::handle(PyExc_ValueError));
  PyObject* err = PyErr_NewException("enigma._core.LayoutError", bases.ptr(), nullptr);
  if (!err) throw nb::python_error();
  m.attr("LayoutError") = nb::handle(err);
  nb::register_exception_translator(
      [](const std::exception_ptr& p, void* payload) {
        try {
          std::rethrow_exception(p);
        } catch (const LayoutError& e) { PyErr_SetString(static_cast<PyObject*>(payload), e.what()); }
      },
      err);

  nb::class_<ScaledBasis>(m, "ScaledBasis",
                          "value@modes: `value` at the mode path `modes` of a coordinate (CuTe's ScaledBasis); "
                          "the strides of identity layouts.")
      .def(
          "__init__",
          [](ScaledBasis* self, int64_t value, nb::handle modes) {
            std::vector<int> m = modes_of(modes);
            IntTuple::basis(value, m);  // validates
            new (self) ScaledBasis{value, std::move(m)};
          },
          "value"_a, "modes"_a)
      .def_ro("value", &ScaledBasis::value)
      .def_prop_ro("modes",
                   [](const ScaledBasis& b) {
                     nb::list l;
                     for (int x : b.modes) l.append(x);
                     return nb::tuple(l);
                   })
      .def("__repr__", [](const ScaledBasis& b) { return IntTuple::basis(b.value, b.modes).str(); })
      .def("__eq__",
           [](const ScaledBasis& a, nb::handle b) {
             if (!nb::isinstance<ScaledBasis>(b)) return false;
             const auto& y = nb::cast<const ScaledBasis&>(b);
             return a.value == y.value && a.modes == y.modes;
           })
      .def("__hash__", [](const ScaledBasis& b) { return nb::hash(nb::make_tuple(b.value, nb::cast(b.modes))); })
      .def("__mul__", [](const ScaledBasis& b, int64_t k) { return ScaledBasis{b.value * k, b.modes}; })
      .def("__rmul__", [](const ScaledBasis& b, int64_t k) { return ScaledBasis{b.value * k, b.modes}; });

  // ---- layouts ----
  m.def("layout_make", [](nb::handle s, nb::handle d) { return out(to_layout(s, d)); }, "shape"_a, "stride"_a.none());
  m.def("layout_str", [](nb::handle s, nb::handle d) { return to_layout(s, d).str(); });
  m.def("layout_eval",
        [](nb::handle s, nb::handle d, nb::handle c) { return from_it(to_layout(s, d)(to_it(c, "coordinate"))); });
  m.def("layout_offsets", [](nb::handle s, nb::handle d) { return to_layout(s, d).offsets(); });
  m.def("layout_cosize", [](nb::handle s, nb::handle d) { return to_layout(s, d).cosize(); });
  m.def("make_ordered_layout", [](nb::handle s, nb::handle o) {
    return out(layout::make_ordered_layout(to_it(s, "shape"), to_it(o, "order")));
  });
  m.def("make_identity_layout", [](nb::handle s) { return out(layout::make_identity_layout(to_it(s, "shape"))); });
  m.def(
      "coalesce",
      [](nb::handle s, nb::handle d, nb::handle profile) {
        Layout l = to_layout(s, d);
        return out(profile.is_none() ? layout::coalesce(l) : layout::coalesce(l, to_it(profile, "profile")));
      },
      "shape"_a, "stride"_a, "profile"_a.none());
  m.def("filter", [](nb::handle s, nb::handle d) { return out(layout::filter(to_layout(s, d))); });
  m.def("composition", [](nb::handle s, nb::handle d, nb::handle t) {
    return out(layout::composition(to_layout(s, d), to_tiler(t)));
  });
  m.def(
      "complement",
      [](nb::handle s, nb::handle d, nb::handle cotarget) {
        Layout l = to_layout(s, d);
        return out(cotarget.is_none() ? layout::complement(l) : layout::complement(l, nb::cast<int64_t>(cotarget)));
      },
      "shape"_a, "stride"_a, "cotarget"_a.none());
  m.def("right_inverse", [](nb::handle s, nb::handle d) { return out(layout::right_inverse(to_layout(s, d))); });
  m.def("left_inverse", [](nb::handle s, nb::handle d) { return out(layout::left_inverse(to_layout(s, d))); });
  m.def("logical_divide", [](nb::handle s, nb::handle d, nb::handle t) {
    return out(layout::logical_divide(to_layout(s, d), to_tiler(t)));
  });
  m.def("zipped_divide", [](nb::handle s, nb::handle d, nb::handle t) {
    return out(layout::zipped_divide(to_layout(s, d), to_tiler(t)));
  });
  m.def("tiled_divide", [](nb::handle s, nb::handle d, nb::handle t) {
    return out(layout::tiled_divide(to_layout(s, d), to_tiler(t)));
  });
  m.def("logical_product", [](nb::handle s, nb::handle d, nb::handle t) {
    return out(layout::logical_product(to_layout(s, d), to_tiler(t)));
  });
  m.def("blocked_product", [](nb::handle s0, nb::handle d0, nb::handle s1, nb::handle d1) {
    return out(layout::blocked_product(to_layout(s0, d0), to_layout(s1, d1)));
  });
  m.def("raked_product", [](nb::handle s0, nb::handle d0, nb::handle s1, nb::handle d1) {
    return out(layout::raked_product(to_layout(s0, d0), to_layout(s1, d1)));
  });
  m.def("upcast", [](nb::handle s, nb::handle d, int64_t n) { return out(layout::upcast(to_layout(s, d), n)); });
  m.def("downcast", [](nb::handle s, nb::handle d, int64_t n) { return out(layout::downcast(to_layout(s, d), n)); });
  m.def("recast_layout", [](int64_t new_bits, int64_t old_bits, nb::handle s, nb::handle d) {
    return out(layout::recast_layout(new_bits, old_bits, to_layout(s, d)));
  });
  m.def("make_layout_tv", [](nb::handle ts, nb::handle td, nb::handle vs, nb::handle vd) {
    auto [tiler, tv] = layout::make_layout_tv(to_layout(ts, td), to_layout(vs, vd));
    return nb::make_tuple(from_it(tiler), out(tv));
  });

  // ---- swizzles ----
  m.def("swizzle_check", [](int b, int mb, int s) { layout::Swizzle(b, mb, s); });
  m.def("swizzle_apply", [](int b, int mb, int s, int64_t x) { return layout::Swizzle(b, mb, s)(x); });
  m.def("swizzle_offsets", [](int b, int mb, int s, nb::handle shape, nb::handle stride) {
    layout::Swizzle sw(b, mb, s);
    std::vector<int64_t> o = to_layout(shape, stride).offsets();
    for (auto& x : o) x = sw(x);
    return o;
  });

  // ---- tuple utilities ----
  m.def("tuple_rank", [](nb::handle t) { return layout::rank(to_it(t, "t")); });
  m.def("tuple_depth", [](nb::handle t) { return layout::depth(to_it(t, "t")); });
  m.def("product", [](nb::handle t) { return layout::product(to_it(t, "t")); });
  m.def("product_each", [](nb::handle t) { return from_it(layout::product_each(to_it(t, "t"))); });
  m.def("flatten", [](nb::handle t) { return from_it(layout::flatten(to_it(t, "t"))); });
  m.def("prefix_product",
        [](nb::handle t, int64_t init) { return from_it(layout::prefix_product(to_it(t, "t"), init)); });
  m.def("compact_order", [](nb::handle s, nb::handle o) {
    return from_it(layout::compact_order(to_it(s, "shape"), to_it(o, "order")));
  });
  m.def(
      "crd2idx",
      [](nb::handle c, nb::handle s, nb::handle d) {
        IntTuple shape = to_it(s, "shape");
        IntTuple stride = d.is_none() ? layout::compact_col_major(shape) : to_it(d, "stride");
        return from_it(layout::crd2idx(to_it(c, "coord"), shape, stride));
      },
      "coord"_a, "shape"_a, "stride"_a.none());
  m.def("idx2crd", [](int64_t i, nb::handle s) { return from_it(layout::idx2crd(i, to_it(s, "shape"))); });
  m.def("ceil_div", [](nb::handle a, nb::handle b) { return from_it(layout::ceil_div(to_it(a, "a"), to_it(b, "b"))); });
  m.def("shape_div",
        [](nb::handle a, nb::handle b) { return from_it(layout::shape_div(to_it(a, "a"), to_it(b, "b"))); });
  m.def("elem_scale",
        [](nb::handle a, nb::handle b) { return from_it(layout::elem_scale(to_it(a, "a"), to_it(b, "b"))); });
  m.def("inner_product",
        [](nb::handle a, nb::handle b) { return layout::inner_product(to_it(a, "a"), to_it(b, "b")); });
  m.def("congruent", [](nb::handle a, nb::handle b) { return layout::congruent(to_it(a, "a"), to_it(b, "b")); });
  m.def("compatible", [](nb::handle a, nb::handle b) { return layout::compatible(to_it(a, "a"), to_it(b, "b")); });
  m.def("repeat_like",
        [](nb::handle v, nb::handle r) { return from_it(layout::repeat_like(to_it(v, "val"), to_it(r, "ref"))); });
}

}  // namespace enigma
