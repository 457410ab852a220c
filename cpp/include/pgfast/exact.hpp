// Exact analysis of a finite MDP under a fixed policy (docs/theory.md, "The three objectives",
// "The policy gradient theorem", "The natural gradient" and "Optimal control"): one include for
// the whole topic.
//
//   exact/chain.hpp        the policy-weighted chain, its structure, stationary distribution,
//                          Poisson equation and discounted solve
//   exact/objectives.hpp   Evaluation, Request, the four objectives and their logit gradients
//   exact/fisher.hpp       Fisher matrices and the natural gradient
//   exact/optimal.hpp      optimal control (backward induction, policy iteration)
//
// The generic solvers they use (dense LU, BiCGSTAB, GMRES) are in linalg.hpp.
#pragma once

#include "pgfast/exact/chain.hpp"
#include "pgfast/exact/fisher.hpp"
#include "pgfast/exact/objectives.hpp"
#include "pgfast/exact/optimal.hpp"
