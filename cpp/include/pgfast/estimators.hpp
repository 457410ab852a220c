// Likelihood-ratio policy gradient estimators over a batch of trajectories (docs/theory.md, "The
// likelihood-ratio gradient", "REINFORCE and reward-to-go" and "Baselines and advantages"): one
// include for the whole topic.
//
//   estimators/score.hpp        PolicyTables, row checks, TrajectoryScorer, score_batch
//   estimators/baselines.hpp    WeightSpec, trajectory weights, the leave-one-out statistics
//   estimators/fused.hpp        FusedSink, SinkRef (estimation during sampling)
//   estimators/likelihood.hpp   the log-likelihood of a batch
//
// Importance sampling for data from another policy is its own topic: off_policy.hpp.
#pragma once

#include "pgfast/estimators/baselines.hpp"
#include "pgfast/estimators/fused.hpp"
#include "pgfast/estimators/likelihood.hpp"
#include "pgfast/estimators/score.hpp"
