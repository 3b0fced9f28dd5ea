// A failed call's rich details (google.rpc.Status: the grpc-status-details-bin
// trailer, or a Connect error's details), decoded into plain typed objects:
// which field was wrong, what was not found, when to retry, which quota ran out.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

export { Code, ConnectError };

export interface FieldViolation {
  field: string;
  description: string;
}

export interface ResourceInfo {
  resourceType: string;
  resourceName: string;
  description: string;
}

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

export interface QuotaViolation {
  subject: string;
  description: string;
}

export interface WizdataErrorDetails {
  code: Code;
  /** The code as the gRPC spec spells it: "NOT_FOUND", "RESOURCE_EXHAUSTED". */
  codeName: string;
  /** The server's message, without the "[code]" prefix ConnectError adds. */
  message: string;
  fieldViolations: FieldViolation[];
  resourceInfo?: ResourceInfo;
  /** How long to wait before calling again (google.rpc.RetryInfo). */
  retryDelayMs?: number;
  errorInfo?: ErrorInfo;
  quotaViolations: QuotaViolation[];
}

/** The gRPC name of a code: Code.NotFound is "NOT_FOUND". */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Decodes any error a call threw (a network failure becomes UNKNOWN or
 * UNAVAILABLE as ConnectError decides) with the details the mesh sent. */
export function errorDetails(error: unknown): WizdataErrorDetails {
  const failed = ConnectError.from(error);
  const details: WizdataErrorDetails = {
    code: failed.code,
    codeName: codeName(failed.code),
    message: failed.rawMessage,
    fieldViolations: failed
      .findDetails(BadRequestSchema)
      .flatMap((request) => request.fieldViolations.map(({ field, description }) => ({ field, description }))),
    quotaViolations: failed
      .findDetails(QuotaFailureSchema)
      .flatMap((failure) => failure.violations.map(({ subject, description }) => ({ subject, description }))),
  };
  const [resource] = failed.findDetails(ResourceInfoSchema);
  if (resource) {
    const { resourceType, resourceName, description } = resource;
    details.resourceInfo = { resourceType, resourceName, description };
  }
  const [retry] = failed.findDetails(RetryInfoSchema);
  if (retry?.retryDelay) {
    details.retryDelayMs = Number(retry.retryDelay.seconds) * 1000 + Math.round(retry.retryDelay.nanos / 1e6);
  }
  const [info] = failed.findDetails(ErrorInfoSchema);
  if (info) {
    details.errorInfo = { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
  }
  return details;
}
