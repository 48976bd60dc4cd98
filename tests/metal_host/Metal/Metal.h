// The part of Apple's Metal framework API that src/runtime/metal/metal_device.mm
// uses, declared so the device compiles on Linux (Objective-C++ with
// GNUstep's Foundation) and links against the fake in tests/metal_host.
// Written from Apple's Metal documentation: selector names, argument and
// return types, nullability and enum values as Apple declares them. Nothing
// here is implemented; fake_metal.mm provides the objects.
//
// Ownership follows Cocoa's naming rules, as in Apple's headers: methods
// whose names begin with "new" (newCommandQueue, newBufferWithLength:options:,
// newLibraryWithSource:options:error:, newFunctionWithName:,
// newComputePipelineStateWithFunction:error:) and "alloc"/"copy" return an
// object the caller owns (+1) and must release; every other getter returns
// an object the caller does not own (+0, autoreleased or held by its
// parent), e.g. -[MTLCommandQueue commandBuffer] and
// -[MTLCommandBuffer computeCommandEncoder]. The C function
// MTLCreateSystemDefaultDevice returns +1 (NS_RETURNS_RETAINED).
//
// Where this declares less than Apple, the runtime must not use the rest:
// a call the header lacks fails to compile here, which is the point.
#ifndef ENIGMA_FAKE_METAL_METAL_H
#define ENIGMA_FAKE_METAL_METAL_H

#import <Foundation/Foundation.h>

// Availability is enforced only by Apple's SDK (the attributes would be
// ignored on a Linux target); the runtime still writes them, so they exist.
#ifndef API_AVAILABLE
#define API_AVAILABLE(...)
#endif
#ifndef API_DEPRECATED
#define API_DEPRECATED(...)
#endif
#ifndef NS_RETURNS_INNER_POINTER
#define NS_RETURNS_INNER_POINTER __attribute__((objc_returns_inner_pointer))
#endif

// The SDK this header stands for: macOS 26, so code written for the newest
// SDK (e.g. MTLCompileOptions.mathMode of macOS 15) is what compiles here.
#ifndef __MAC_OS_X_VERSION_MAX_ALLOWED
#define __MAC_OS_X_VERSION_MAX_ALLOWED 260000
#endif

#ifdef __cplusplus
#define ENIGMA_FAKE_MTL_EXTERN extern "C"
#else
#define ENIGMA_FAKE_MTL_EXTERN extern
#endif

// CoreFoundation's time type (seconds); GNUstep has no CoreFoundation.
typedef double CFTimeInterval;

NS_ASSUME_NONNULL_BEGIN

@protocol MTLDevice;
@protocol MTLCommandQueue;
@protocol MTLCommandBuffer;
@protocol MTLComputeCommandEncoder;
@protocol MTLBuffer;
@protocol MTLLibrary;
@protocol MTLFunction;
@protocol MTLComputePipelineState;

// ---- sizes ------------------------------------------------------------------

// MTLTypes.h
typedef struct {
  NSUInteger width, height, depth;
} MTLSize;

static inline MTLSize MTLSizeMake(NSUInteger width, NSUInteger height, NSUInteger depth) {
  MTLSize size = {width, height, depth};
  return size;
}

// ---- enumerations ------------------------------------------------------------

// MTLDevice.h. Apple10 exists from the macOS/iOS 26 SDKs only.
typedef NS_ENUM(NSInteger, MTLGPUFamily) {
  MTLGPUFamilyApple1 = 1001,
  MTLGPUFamilyApple2 = 1002,
  MTLGPUFamilyApple3 = 1003,
  MTLGPUFamilyApple4 = 1004,
  MTLGPUFamilyApple5 = 1005,
  MTLGPUFamilyApple6 = 1006,
  MTLGPUFamilyApple7 = 1007,
  MTLGPUFamilyApple8 = 1008,
  MTLGPUFamilyApple9 = 1009,
};

// MTLResource.h: the storage mode (MTLStorageModeShared is 0) occupies bits
// 4..7 of the resource options.
#define MTLResourceStorageModeShift 4
typedef NS_OPTIONS(NSUInteger, MTLResourceOptions) {
  MTLResourceStorageModeShared = 0 << MTLResourceStorageModeShift,
};

// MTLLibrary.h: (major << 16) + minor.
typedef NS_ENUM(NSUInteger, MTLLanguageVersion) {
  MTLLanguageVersion3_0 = (3 << 16) + 0,
  MTLLanguageVersion3_1 = (3 << 16) + 1,
  MTLLanguageVersion3_2 = (3 << 16) + 2,
};

// MTLLibrary.h (macOS 15, iOS 18).
typedef NS_ENUM(NSInteger, MTLMathMode) {
  MTLMathModeSafe = 0,
  MTLMathModeFast = 2,
};

// MTLLibrary.h (macOS 15, iOS 18). Setting fastMathEnabled = NO sets both
// mathMode = Safe and mathFloatingPointFunctions = Precise; setting mathMode
// alone leaves the functions at Fast, the default.
typedef NS_ENUM(NSInteger, MTLMathFloatingPointFunctions) {
  MTLMathFloatingPointFunctionsFast = 0,
  MTLMathFloatingPointFunctionsPrecise = 1,
};

// MTLLibrary.h: codes of MTLLibraryErrorDomain.
typedef NS_ENUM(NSUInteger, MTLLibraryError) {
  MTLLibraryErrorInternal = 2,
  MTLLibraryErrorCompileFailure = 3,
};
ENIGMA_FAKE_MTL_EXTERN NSErrorDomain const MTLLibraryErrorDomain;

// MTLCommandBuffer.h
typedef NS_ENUM(NSUInteger, MTLCommandBufferStatus) {
  MTLCommandBufferStatusNotEnqueued = 0,
  MTLCommandBufferStatusCommitted = 2,
  MTLCommandBufferStatusCompleted = 4,
  MTLCommandBufferStatusError = 5,
};

// MTLCommandBuffer.h: codes of MTLCommandBufferErrorDomain.
typedef NS_ENUM(NSUInteger, MTLCommandBufferError) {
  MTLCommandBufferErrorInternal = 1,
};
ENIGMA_FAKE_MTL_EXTERN NSErrorDomain const MTLCommandBufferErrorDomain;

// ---- objects -----------------------------------------------------------------

// MTLLibrary.h
@interface MTLCompileOptions : NSObject <NSCopying>
@property(readwrite, nonatomic) BOOL fastMathEnabled
    API_DEPRECATED("Use mathMode instead", macos(10.11, 15.0), ios(8.0, 18.0));
@property(readwrite, nonatomic) MTLMathMode mathMode API_AVAILABLE(macos(15.0), ios(18.0));
@property(readwrite, nonatomic) MTLMathFloatingPointFunctions mathFloatingPointFunctions
    API_AVAILABLE(macos(15.0), ios(18.0));
@property(readwrite, nonatomic) MTLLanguageVersion languageVersion;
@property(nullable, readwrite, copy, nonatomic) NSDictionary<NSString*, NSObject*>* preprocessorMacros;
@end

// MTLResource.h / MTLBuffer.h
@protocol MTLBuffer <NSObject>
@property(readonly) NSUInteger length;
- (void*)contents NS_RETURNS_INNER_POINTER;
@property(nullable, copy, atomic) NSString* label;
@end

// MTLFunction.h
@protocol MTLFunction <NSObject>
@property(readonly) NSString* name;
@property(readonly) id<MTLDevice> device;
@end

// MTLLibrary.h
@protocol MTLLibrary <NSObject>
- (nullable id<MTLFunction>)newFunctionWithName:(NSString*)functionName;
@property(readonly) NSArray<NSString*>* functionNames;
@property(readonly) id<MTLDevice> device;
@end

// MTLComputePipeline.h
@protocol MTLComputePipelineState <NSObject>
@property(readonly) NSUInteger maxTotalThreadsPerThreadgroup;
@property(readonly) NSUInteger threadExecutionWidth;
@property(readonly) NSUInteger staticThreadgroupMemoryLength;
@property(readonly) id<MTLDevice> device;
@end

// MTLCommandEncoder.h / MTLComputeCommandEncoder.h
@protocol MTLCommandEncoder <NSObject>
- (void)endEncoding;
@property(readonly) id<MTLDevice> device;
@end

@protocol MTLComputeCommandEncoder <MTLCommandEncoder>
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state;
- (void)setBytes:(const void*)bytes length:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)setBuffer:(nullable id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index;
- (void)setThreadgroupMemoryLength:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)dispatchThreadgroups:(MTLSize)threadgroupsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
- (void)dispatchThreads:(MTLSize)threadsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
@end

// MTLCommandBuffer.h
@protocol MTLCommandBuffer <NSObject>
- (nullable id<MTLComputeCommandEncoder>)computeCommandEncoder;
- (void)commit;
- (void)waitUntilCompleted;
@property(readonly) MTLCommandBufferStatus status;
@property(nullable, readonly) NSError* error;
@property(readonly) CFTimeInterval GPUStartTime;
@property(readonly) CFTimeInterval GPUEndTime;
@property(readonly) id<MTLDevice> device;
@property(readonly) id<MTLCommandQueue> commandQueue;
@end

// MTLCommandQueue.h
@protocol MTLCommandQueue <NSObject>
- (nullable id<MTLCommandBuffer>)commandBuffer;
@property(readonly) id<MTLDevice> device;
@end

// MTLDevice.h
@protocol MTLDevice <NSObject>
@property(readonly) NSString* name;
@property(readonly) MTLSize maxThreadsPerThreadgroup;
@property(readonly) NSUInteger maxThreadgroupMemoryLength;
@property(readonly) NSUInteger maxBufferLength;
- (BOOL)supportsFamily:(MTLGPUFamily)gpuFamily;
- (nullable id<MTLCommandQueue>)newCommandQueue;
- (nullable id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
- (nullable id<MTLLibrary>)newLibraryWithSource:(NSString*)source
                                        options:(nullable MTLCompileOptions*)options
                                          error:(__autoreleasing NSError**)error;
- (nullable id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)computeFunction
                                                                      error:(__autoreleasing NSError**)error;
@end

// The system's default GPU, or nil (e.g. in a process without GPU access).
ENIGMA_FAKE_MTL_EXTERN id<MTLDevice> _Nullable MTLCreateSystemDefaultDevice(void) NS_RETURNS_RETAINED;

NS_ASSUME_NONNULL_END

#endif  // ENIGMA_FAKE_METAL_METAL_H
