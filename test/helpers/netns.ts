// Separate hosts on one machine (network namespaces on a bridge): the launcher's emulation, under the tests' names.
export {
  createEmulatedHosts as createTestNetwork, emulationUnavailableReason as netnsUnavailableReason, type EmulatedHost as TestHost, type EmulatedNetwork as TestNetwork,
} from '@trainer/launcher';
