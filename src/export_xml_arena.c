/* Bump allocator for the tree of one annotation. Building the tree costs
 * no malloc per node, and the whole tree goes at once when the annotation
 * has been converted. The common case of xml_arena_alloc is inline in
 * export_xml_internal.h, and this file makes and reuses the blocks. */
#include "export_xml_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the first block. A typical annotation of a Rossum export, with
 * a few dozen line items, fits in one. */
#define ARENA_BLOCK_BYTES (32 * 1024)

struct xml_arena_block {
  struct xml_arena_block *next;
  size_t size; /* bytes of data */
  _Alignas(XML_ARENA_ALIGN) unsigned char data[];
};

static void use_block(struct xml_arena *arena, struct xml_arena_block *block)
{
  arena->current = block;
  arena->next = block->data;
  arena->end = block->data + block->size;
}

/* Link a new block of at least size bytes after the current one and make
 * it current. Returns NULL when out of memory or when size overflows. */
static struct xml_arena_block *add_block(struct xml_arena *arena, size_t size)
{
  size_t block_size = ARENA_BLOCK_BYTES;

  while (block_size < size) {
    if (block_size > (SIZE_MAX - sizeof(struct xml_arena_block)) / 2)
      return NULL;
    block_size *= 2;
  }

  struct xml_arena_block *block = malloc(sizeof(*block) + block_size);
  if (block == NULL)
    return NULL;
  block->size = block_size;
  if (arena->current == NULL) {
    block->next = NULL;
    arena->first = block;
  } else {
    block->next = arena->current->next;
    arena->current->next = block;
  }
  use_block(arena, block);
  return block;
}

void *xml_arena_alloc_block(struct xml_arena *arena, size_t size)
{
  struct xml_arena_block *block = arena->current;

  /* Blocks after the current one are empty since the last reset. One too
   * small for this request is passed over and stays for the next
   * annotation. */
  while (block != NULL && block->next != NULL) {
    block = block->next;
    if (block->size >= size) {
      use_block(arena, block);
      return xml_arena_alloc(arena, size);
    }
  }
  if (add_block(arena, size) == NULL)
    return NULL;
  return xml_arena_alloc(arena, size);
}

void *xml_arena_grow(struct xml_arena *arena, void *data, size_t used,
                     size_t extra)
{
  unsigned char *start = data;
  size_t grown = used + extra;

  if (grown < used)
    return NULL;

  /* The last allocation grows in place while its block has room. The
   * addresses are compared as integers, because data may lie in another
   * block. */
  uintptr_t address = (uintptr_t)start;
  uintptr_t next = (uintptr_t)arena->next;
  uintptr_t end = (uintptr_t)arena->end;
  if (arena->current != NULL && address <= next &&
      next - address == xml_arena_align(used) && end - address >= grown) {
    size_t aligned = xml_arena_align(grown);
    arena->next = aligned <= end - address ? start + aligned : arena->end;
    return data;
  }

  /* Otherwise it moves to a block with room to double, so that a long
   * text that arrives in small pieces is copied O(log n) times, not once
   * per piece. The room beyond grown is given back for the next
   * growth. */
  size_t room = grown <= SIZE_MAX / 4 ? 2 * grown : grown;
  unsigned char *moved = xml_arena_alloc(arena, room);
  if (moved == NULL)
    return NULL;
  memcpy(moved, data, used);
  arena->next = moved + xml_arena_align(grown);
  return moved;
}

void xml_arena_reset(struct xml_arena *arena)
{
  if (arena->first != NULL)
    use_block(arena, arena->first);
}

void xml_arena_free(struct xml_arena *arena)
{
  struct xml_arena_block *block = arena->first;

  while (block != NULL) {
    struct xml_arena_block *next = block->next;
    free(block);
    block = next;
  }
  memset(arena, 0, sizeof(*arena));
}
