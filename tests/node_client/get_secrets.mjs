// The standard's getSecrets(): GetSecretValueCommand({ SecretId }) with no version stage, then the
// assignments the portal's integration page generates for the secret, run as they are.
//
// Usage: AWS_BRANCH=<environment> node get_secrets.mjs <secret-name> <snippet-file>
// The AWS SDK reads AWS_ENDPOINT_URL, AWS_REGION and the credentials from the environment.
// Prints {"<VARIABLE>": "<value>", ...}: the process.env entries the snippet set (test use only).
import { readFileSync } from 'node:fs';
import { SecretsManagerClient, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';

const [secretName, snippetFile] = process.argv.slice(2);
const before = new Set(Object.keys(process.env));
const secretsManager = new SecretsManagerClient({});
const response = await secretsManager.send(new GetSecretValueCommand({ SecretId: secretName }));
if (!response.SecretString) {
  throw new Error('Secret value is empty');
}
const allSecrets = JSON.parse(response.SecretString);
// The snippet reads `allSecrets` and writes process.env.<SERVICE>_<KEY>.
new Function('allSecrets', 'process', readFileSync(snippetFile, 'utf8'))(allSecrets, process);
const set = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !before.has(name)),
);
process.stdout.write(JSON.stringify(set));
