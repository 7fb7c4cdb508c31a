export {
  asFloat32, bytesOf, decodeSafetensors, encodeSafetensors, readSafetensors, writeJsonAtomic, writeSafetensors,
  MAX_HEADER_BYTES, type NamedTensor, type SafetensorsDtype, type SafetensorsFile,
} from './safetensors.js';
