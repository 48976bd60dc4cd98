// NVRTC has no <cstdint>: these are the fixed-width integer types every
// generated CUDA kernel and math_cuda.h use. Pasted (without these comment
// lines) at the top of each CUDA kernel; tests/cpp/test_cuda_math_host.cpp
// includes it to compile the CUDA library as host C++.
typedef signed char en_i8;
typedef unsigned char en_u8;
typedef short en_i16;
typedef unsigned short en_u16;
typedef int en_i32;
typedef unsigned int en_u32;
typedef long long en_i64;
typedef unsigned long long en_u64;
