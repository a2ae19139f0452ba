import { Command } from 'commander';
import { adaptCommand } from './commands/adapt';
import { benchmarkCommand, demoCommand } from './commands/benchmark';
import { dataCommand } from './commands/data';
import { evaluateCommand } from './commands/evaluate';
import { pacsCommand } from './commands/pacs';
import { policyCommand } from './commands/policy';
import { reliabilityCommand } from './commands/reliability';
import { segmentCommand } from './commands/segment';
import { statusCommand } from './commands/status';
import { trainSourceCommand } from './commands/train-source';
import { upCommand } from './commands/up';

import { version as VERSION } from '../package.json';

export function buildProgram(): Command {
  return new Command('purify')
    .description('Unsupervised domain adaptation for medical image segmentation with RL-purified pseudo-labels')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addCommand(upCommand())
    .addCommand(statusCommand())
    .addCommand(dataCommand())
    .addCommand(evaluateCommand())
    .addCommand(policyCommand())
    .addCommand(segmentCommand())
    .addCommand(reliabilityCommand())
    .addCommand(pacsCommand())
    .addCommand(trainSourceCommand())
    .addCommand(adaptCommand())
    .addCommand(benchmarkCommand())
    .addCommand(demoCommand());
}

