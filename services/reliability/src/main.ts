// Entry point of the reliability service process.
import { initTelemetry } from '@purify/telemetry';

// OpenTelemetry must be registered before @grpc/grpc-js loads, so the server
// module (which loads grpc-js) is required only after this call.
initTelemetry('reliability');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { main } = require('./server') as typeof import('./server');
main(process.argv.slice(2));
