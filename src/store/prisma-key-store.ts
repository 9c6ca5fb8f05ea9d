import type { ApiKeyRecord, KeyStore } from '../auth/api-keys';
import type { PrismaClient } from './generated/sqlite/client';

/** API keys on Prisma. */
export class PrismaKeyStore implements KeyStore {
  constructor(private readonly prisma: PrismaClient) {}

  insertKey(record: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>): Promise<ApiKeyRecord> {
    return this.prisma.apiKey.create({ data: record });
  }

  findKeysByPrefix(prefix: string): Promise<ApiKeyRecord[]> {
    return this.prisma.apiKey.findMany({ where: { prefix } });
  }

  listKeys(): Promise<ApiKeyRecord[]> {
    return this.prisma.apiKey.findMany({ orderBy: { createdAt: 'asc' } });
  }

  async revokeKey(id: string): Promise<ApiKeyRecord | null> {
    const { count } = await this.prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
    if (count === 0 && !(await this.prisma.apiKey.findUnique({ where: { id }, select: { id: true } }))) return null;
    return this.prisma.apiKey.findUnique({ where: { id } });
  }

  countKeys(): Promise<number> {
    return this.prisma.apiKey.count();
  }
}
